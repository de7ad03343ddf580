import ArgumentParser
import Foundation
import Surgery
import TensorFormats

/// Output formats `convert` can write.
enum OutputFormat: String, CaseIterable, ExpressibleByArgument {
    case safetensors
    case hdf5
    case gguf
}

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a checkpoint: cast dtypes, select and rename tensors, shard, change format.",
        discussion: """
        Casts apply to floating-point tensors only and round to nearest even as torch does; values that \
        overflow the target are reported. The output format follows OUT's suffix or --to; a stream (-) is \
        safetensors. OUT may be a folder (an existing directory or a path ending in /): it receives \
        diffusion_pytorch_model.safetensors and config.json when the input has a model config, else \
        model.safetensors. With --shard-size, shards and an index are written as huggingface_hub does. \
        A model config travels inside single-file and stream outputs as the dmsurgery.config metadata key. \
        Outputs are written to a temporary file, fsynced and renamed: an error or interrupt leaves nothing. \
        HDF5 output (.h5, .hdf5 or --to hdf5) uses --layout dmsurgery (default, round-trips exactly) or \
        keras3, and --compress gzip[:LEVEL] or zstd[:LEVEL] for its datasets; GGUF output (.gguf or --to gguf) takes \
        --quant and keeps small and 1-D tensors in float as ComfyUI-GGUF does (formats/gguf.md); safetensors output takes \
        --compress zstd[:LEVEL] or a .zst suffix (formats/hdf5.md, formats/zstd.md). Inputs compressed \
        with zstd are read transparently.

        Exit status: 0 success; 2 invalid or unreadable input, or an I/O error; 64 usage error.
        """
    )

    @Argument(help: "Input checkpoint (a file, a *.index.json, a model folder, or -).")
    var input: String

    @Argument(help: "Output path, folder, or - for standard output.")
    var output: String

    @Option(help: ArgumentHelp("Cast floating-point tensors to this type (f16, bf16, f32, f64).", valueName: "type"))
    var dtype: String?

    @Option(help: ArgumentHelp("Keep only tensors matching this glob (repeatable; * crosses dots).", valueName: "glob"))
    var only: [String] = []

    @Option(help: ArgumentHelp("Drop tensors matching this glob (repeatable).", valueName: "glob"))
    var exclude: [String] = []

    @Option(help: ArgumentHelp("Rename a dotted prefix: FROM=TO (repeatable; empty TO strips the prefix).", valueName: "from=to"))
    var rename: [String] = []

    @Option(help: ArgumentHelp("Write shards of at most this size (e.g. 5GB, 500MB, 2GiB) plus an index.", valueName: "size"))
    var shardSize: String?

    @Option(help: "Output format when OUT's suffix does not say.")
    var to: OutputFormat?

    @Option(help: ArgumentHelp("Compress the output: zstd[:LEVEL] (any output; a .zst suffix implies zstd), or gzip[:LEVEL] (HDF5 datasets).",
                               valueName: "codec[:level]"))
    var compress: String?

    @Option(help: ArgumentHelp("GGUF output: store the bulk of the weights as f32, f16, bf16, q8_0, q4_0, q4_1, q5_0 or q5_1 (default: each tensor's own type).",
                               valueName: "type"))
    var quant: String?

    @OptionGroup var inputOptions: InputOptions
    @OptionGroup var binary: BinaryOutputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        if let dtype {
            guard let parsed = DType(userName: dtype), [.f16, .bf16, .f32, .f64].contains(parsed) else {
                throw ValidationError("--dtype must be one of f16, bf16, f32, f64 (got '\(dtype)')")
            }
        }
        for rule in rename where RenameRule(argument: rule) == nil {
            throw ValidationError("--rename takes FROM=TO with a non-empty FROM (got '\(rule)')")
        }
        if let shardSize, parseByteSize(shardSize) == nil {
            throw ValidationError("--shard-size must be a size such as 5GB, 500MB or 2GiB (got '\(shardSize)')")
        }
        if shardSize != nil && output == "-" {
            throw ValidationError("--shard-size writes several files and cannot go to standard output")
        }
        if let compress, HDF5Compression(parsing: compress) == nil {
            throw ValidationError("--compress takes zstd[:1-22] or gzip[:0-9] (got '\(compress)')")
        }
        if outputFormat == .gguf || quant != nil { try validateGGUF() }
        if outputFormat == .hdf5 {
            if let layout = inputOptions.layout, HDF5WriteLayout(rawValue: layout) == nil {
                throw ValidationError("--layout for HDF5 output is one of \(HDF5WriteLayout.allCases.map(\.rawValue).joined(separator: ", ")) (got '\(layout)')")
            }
            if shardSize != nil { throw ValidationError("--shard-size applies to safetensors output only") }
            if output.lowercased().hasSuffix(".zst") { throw ValidationError("HDF5 output is compressed inside the file: use --compress, not a .zst suffix") }
        } else if let compression = outputCompression, compression.codec != .zstd {
            throw ValidationError("safetensors output is compressed with zstd only (got '\(compress!)')")
        } else if outputCompression != nil, shardSize != nil {
            throw ValidationError("--compress does not apply to sharded output")
        }
    }

    /// The output format: --to, else OUT's suffix (a trailing .zst aside).
    var outputFormat: OutputFormat {
        let plain = output.lowercased().hasSuffix(".zst") ? String(output.dropLast(4)) : output
        return to ?? (hasHDF5Suffix(plain) ? .hdf5 : plain.lowercased().hasSuffix(".gguf") ? .gguf : .safetensors)
    }

    /// --compress, or zstd at the default level for a .zst output.
    private var outputCompression: HDF5Compression? {
        if let compress { return HDF5Compression(parsing: compress) }
        return output.lowercased().hasSuffix(".zst") ? HDF5Compression(codec: .zstd, level: Zstd.defaultLevel) : nil
    }

    func run() throws {
        try runCommand {
            // With HDF5 output, --layout names the output layout, so the input's is recognised.
            var readOptions = inputOptions
            if outputFormat == .hdf5 { readOptions.layout = nil }
            var checkpoint = try openCheckpoint(input, readOptions)
            let selection = TensorSelection(only: only, exclude: exclude, renames: rename.compactMap(RenameRule.init(argument:)))
            let target = dtype.flatMap(DType.init(userName:))
            var plan = try ConvertPlan(checkpoint: checkpoint, dtype: target, selection: selection)
            let result = outputFormat == .hdf5 ? try writeHDF5(plan)
                : outputFormat == .gguf ? try writeGGUF(plan)
                : try writeSafetensors(&plan, checkpoint: &checkpoint, selection: selection, target: target)
            for overflow in result.overflows {
                note("warning: \(formatCount(overflow.count)) values overflowed \(target?.rawValue ?? "the target type") (tensor '\(overflow.tensor)')", quiet: common.quiet)
            }
            let casts = plan.tensors.filter { $0.dtype != $0.source.dtype }.count
            note("wrote \(result.files.joined(separator: ", ")): \(formatCount(result.tensors)) tensors, \(formatBytes(result.bytesWritten))"
                 + (casts > 0 ? ", \(casts) cast to \(target!.rawValue)" : ""), quiet: common.quiet)
        }
    }

    private func writeHDF5(_ plan: ConvertPlan) throws -> ConvertResult {
        try refuseOverwritingInput(output, plan.checkpoint)
        let bar = ProgressBar("convert", total: plan.tensors.reduce(0) { $0 + $1.source.byteCount }, quiet: common.quiet)
        defer { bar.finish() }
        var result = ConvertResult()
        try Converter.writeHDF5(plan, metadata: plan.metadata(embedConfig: true), to: output, force: binary.force,
                                layout: inputOptions.layout.flatMap(HDF5WriteLayout.init(rawValue:)) ?? .dmsurgery,
                                compression: outputCompression, progress: bar.update, result: &result)
        try plan.checkpoint.finish()
        result.files.append(output)
        return result
    }

    /// One file or stream, a folder, or shards; a stream input is spooled when the output needs another order.
    private func writeSafetensors(_ plan: inout ConvertPlan, checkpoint: inout Checkpoint, selection: TensorSelection,
                                  target: DType?) throws -> ConvertResult {
        let folder = output != "-" && (output.hasSuffix("/") || isDirectory(output))
        let base = folder ? folderWeights(output, hasConfig: checkpoint.configJSON != nil) : output
        try refuseOverwritingInput(base, checkpoint)
        // A folder or a shard set carries the config as config.json beside the weights instead.
        let embedConfig = !folder && shardSize == nil
        let metadata = plan.metadata(embedConfig: embedConfig)
        let layout = SafetensorsWriter(tensors: plan.specs, metadata: metadata).header
        if checkpoint.isSequential && (shardSize != nil || plan.needsReordering(for: layout)) {
            checkpoint = try checkpoint.withRandomAccess()
            plan = try ConvertPlan(checkpoint: checkpoint, dtype: target, selection: selection)
        }
        if folder { try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true) }

        let bar = ProgressBar("convert", total: plan.tensors.reduce(0) { $0 + $1.source.byteCount }, quiet: common.quiet)
        defer { bar.finish() }
        var result = ConvertResult()
        if let shardSize, let maxBytes = parseByteSize(shardSize) {
            try Converter.writeSharded(plan, base: base, maxBytes: maxBytes, metadata: metadata, progress: bar.update, result: &result)
        } else {
            let out = try OutputFile(path: base, force: binary.force)
            if let compression = outputCompression { out.zstd = try ZstdEncoder(level: compression.level) }
            try Converter.writeSafetensors(plan, metadata: metadata, to: out, progress: bar.update, result: &result)
            try out.commit()
            result.files.append(base)
        }
        try checkpoint.finish()
        if !embedConfig, let config = checkpoint.configJSON {
            let directory = (base as NSString).deletingLastPathComponent
            let configPath = (directory.isEmpty ? "" : directory + "/") + "config.json"
            let out = try OutputFile(path: configPath)
            try out.write(Array(config.utf8))
            try out.commit()
            result.files.append(configPath)
        }
        return result
    }

    private func folderWeights(_ folder: String, hasConfig: Bool) -> String {
        (folder.hasSuffix("/") ? folder : folder + "/") + (hasConfig ? "diffusion_pytorch_model.safetensors" : "model.safetensors")
    }

    func refuseOverwritingInput(_ path: String, _ checkpoint: Checkpoint) throws {
        guard let out = FileIdentity(path: path) else { return }
        for file in checkpoint.files where FileIdentity(path: file.path) == out {
            throw TensorFormatError(.sameFile, "output is the input file \(file.path)", file: path)
        }
    }
}

func hasHDF5Suffix(_ path: String) -> Bool {
    let lower = path.lowercased()
    return lower.hasSuffix(".h5") || lower.hasSuffix(".hdf5")
}

func isDirectory(_ path: String) -> Bool {
    var isDir: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
}
