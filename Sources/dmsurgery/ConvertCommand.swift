import ArgumentParser
import Foundation
import Surgery
import TensorFormats

/// Output formats `convert` can write.
enum OutputFormat: String, CaseIterable, ExpressibleByArgument {
    case safetensors
    case hdf5
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
        Outputs are written to a temporary file, fsynced and renamed: an error or interrupt leaves nothing.

        Exit status: 0 success; 2 invalid or unreadable input, or an I/O error; 64 usage error.
        """
    )

    @Argument(help: "Input checkpoint (a file, a *.index.json, a model folder, or -).")
    var input: String

    @Argument(help: "Output path, folder, or - for standard output.")
    var output: String

    @Option(help: "Cast floating-point tensors to this type (f16, bf16, f32, f64).")
    var dtype: String?

    @Option(help: "Keep only tensors matching this glob (repeatable; * crosses dots).")
    var only: [String] = []

    @Option(help: "Drop tensors matching this glob (repeatable).")
    var exclude: [String] = []

    @Option(help: "Rename a dotted prefix: FROM=TO (repeatable; empty TO strips the prefix).")
    var rename: [String] = []

    @Option(help: "Write shards of at most this size (e.g. 5GB, 500MB, 2GiB) plus an index.")
    var shardSize: String?

    @Option(help: "Output format when OUT's suffix does not say.")
    var to: OutputFormat?

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
    }

    func run() throws {
        try runCommand {
            var checkpoint = try openCheckpoint(input, inputOptions)
            let selection = TensorSelection(only: only, exclude: exclude, renames: rename.compactMap(RenameRule.init(argument:)))
            let target = dtype.flatMap(DType.init(userName:))
            var plan = try ConvertPlan(checkpoint: checkpoint, dtype: target, selection: selection)
            let format = to ?? (hasHDF5Suffix(output) ? .hdf5 : .safetensors)
            guard format == .safetensors else {
                throw TensorFormatError(.unsupported, "HDF5 output is not available in this build", file: output)
            }
            let folder = output != "-" && (output.hasSuffix("/") || isDirectory(output))
            let base = folder ? folderWeights(output, hasConfig: checkpoint.configJSON != nil) : output
            try refuseOverwritingInput(base, checkpoint)

            let embedConfig = !folder
            let metadata = plan.metadata(embedConfig: embedConfig)
            let layout = SafetensorsWriter(tensors: plan.specs, metadata: metadata).header
            if checkpoint.isSequential && (shardSize != nil || plan.needsReordering(for: layout)) {
                checkpoint = try checkpoint.withRandomAccess()
                plan = try ConvertPlan(checkpoint: checkpoint, dtype: target, selection: selection)
            }
            if folder { try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true) }

            let bar = ProgressBar("convert", total: plan.tensors.reduce(0) { $0 + $1.source.byteCount }, quiet: common.quiet)
            var result = ConvertResult()
            if let shardSize, let maxBytes = parseByteSize(shardSize) {
                try Converter.writeSharded(plan, base: base, maxBytes: maxBytes, metadata: metadata, progress: bar.update, result: &result)
            } else {
                let out = try OutputFile(path: base, force: binary.force)
                try Converter.writeSafetensors(plan, metadata: metadata, to: out, progress: bar.update, result: &result)
                try out.commit()
                result.files.append(base)
            }
            try checkpoint.finish()
            if folder, let config = checkpoint.configJSON {
                let configPath = (output.hasSuffix("/") ? output : output + "/") + "config.json"
                let out = try OutputFile(path: configPath)
                try out.write(Array(config.utf8))
                try out.commit()
                result.files.append(configPath)
            }
            bar.finish()
            for overflow in result.overflows {
                note("warning: \(formatCount(overflow.count)) values overflowed \(target?.rawValue ?? "the target type") (tensor '\(overflow.tensor)')", quiet: common.quiet)
            }
            let casts = plan.tensors.filter { $0.dtype != $0.source.dtype }.count
            note("wrote \(result.files.joined(separator: ", ")): \(formatCount(result.tensors)) tensors, \(formatBytes(result.bytesWritten))"
                 + (casts > 0 ? ", \(casts) cast to \(target!.rawValue)" : ""), quiet: common.quiet)
        }
    }

    private func folderWeights(_ folder: String, hasConfig: Bool) -> String {
        (folder.hasSuffix("/") ? folder : folder + "/") + (hasConfig ? "diffusion_pytorch_model.safetensors" : "model.safetensors")
    }

    private func refuseOverwritingInput(_ path: String, _ checkpoint: Checkpoint) throws {
        guard let out = FileIdentity(path: path) else { return }
        for file in checkpoint.files where FileIdentity(path: file.path) == out {
            throw TensorFormatError(.sameFile, "output is the input file \(file.path)", file: path)
        }
    }
}

func hasHDF5Suffix(_ path: String) -> Bool {
    let lower = path.lowercased()
    return lower.hasSuffix(".h5") || lower.hasSuffix(".hdf5") || lower.hasSuffix(".keras")
}

func isDirectory(_ path: String) -> Bool {
    var isDir: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
}
