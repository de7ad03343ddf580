import ArgumentParser
import Foundation
import Surgery
import TensorFormats
import Workflows

extension OutputFormat: ExpressibleByArgument {}

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
        with zstd are read transparently. --layout diffusers turns an original single-file Stable Diffusion \
        checkpoint (SD 1.x, 2.x, XL) into a diffusers pipeline folder, --layout ldm a pipeline folder into the \
        single file (formats/ldm.md); with a .gguf OUT, --layout ldm writes the UNet with its original names \
        as ComfyUI-GGUF's convert.py and llama-quantize do (sd1/sdxl, formats/gguf.md). A pipeline folder converted to a folder without --layout is re-saved \
        whole: every component's weights converted (--dtype) under --variant's names, model_index.json, \
        configs, scheduler/ and tokenizer/ copied (formats/ldm.md, "Re-saving a pipeline"). ONNX output (.onnx or \
        --to onnx) writes a UNet, text encoder or VAE half (--part) as an ONNX graph, and a pipeline folder as \
        OnnxStableDiffusionPipeline's folder (--unet ships a student), with --static, --quant int8|int4 and \
        --block-size (formats/onnx.md).

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

    @Option(help: ArgumentHelp("GGUF output: store the bulk of the weights as f32, f16, bf16, q8_0, q4_0, q4_1, q5_0 or q5_1 (default: each tensor's own type); ONNX output: int8 or int4 weights (MatMulNBits, DequantizeLinear).",
                               valueName: "type"))
    var quant: String?

    @OptionGroup var inputOptions: InputOptions
    @OptionGroup var layoutOptions: LayoutOptions
    @OptionGroup var onnx: ONNXOptions
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
        if let compress, OutputCompression(parsing: compress) == nil {
            throw ValidationError("--compress takes zstd[:1-22] or gzip[:0-9] (got '\(compress)')")
        }
        try validateONNX()
        if outputFormat != .onnx && (outputFormat == .gguf || quant != nil) { try validateGGUF() }
        if inputOptions.hdf5Layout.flatMap(PipelineLayout.init(rawValue:)) == nil,
           ConvertWorkflow.isPipelineConversion(input: input, output: output, format: outputFormat),
           !only.isEmpty || !exclude.isEmpty || !rename.isEmpty || shardSize != nil || compress != nil {
            throw ValidationError("a whole pipeline is converted with --dtype and --variant only (no --only, --exclude, --rename, --shard-size or --compress)")
        }
        if outputFormat == .hdf5 && inputOptions.hdf5Layout.flatMap(PipelineLayout.init(rawValue:)) == nil {
            if let layout = inputOptions.hdf5Layout, HDF5WriteLayout(rawValue: layout) == nil {
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
        return to ?? (hasHDF5Suffix(plain) ? .hdf5 : plain.lowercased().hasSuffix(".gguf") ? .gguf
                      : plain.lowercased().hasSuffix(".onnx") ? .onnx : .safetensors)
    }

    /// --compress, or zstd at the default level for a .zst output.
    private var outputCompression: OutputCompression? {
        if let compress { return OutputCompression(parsing: compress) }
        return output.lowercased().hasSuffix(".zst") ? OutputCompression(codec: .zstd, level: Zstd.defaultLevel) : nil
    }

    func run() throws {
        if try convertLayout() { return }
        var settings = ConvertSettings(input: input, output: output)
        settings.dtype = dtype.flatMap(DType.init(userName:))
        settings.selection = TensorSelection(only: only, exclude: exclude, renames: rename.compactMap(RenameRule.init(argument:)))
        settings.shardBytes = shardSize.flatMap(parseByteSize)
        settings.format = outputFormat
        settings.compression = outputCompression
        settings.open = inputOptions.open
        if outputFormat == .hdf5 {
            // With HDF5 output, --layout names the output layout, so the input's is recognised.
            settings.open.hdf5Layout = nil
            settings.hdf5Layout = inputOptions.hdf5Layout.flatMap(HDF5WriteLayout.init(rawValue:)) ?? .dmsurgery
        }
        settings.quant = outputFormat == .onnx ? nil : quant.flatMap(GGMLType.init(userName:))
        settings.onnx = onnx.options(quant: quant)
        settings.force = binary.force
        settings.quiet = common.quiet
        let (result, casts) = try ConvertWorkflow.run(settings)
        for overflow in result.overflows {
            note("warning: \(formatCount(overflow.count)) values overflowed \(settings.dtype?.rawValue ?? "the target type") (tensor '\(overflow.tensor)')", quiet: common.quiet)
        }
        note("wrote \(result.files.joined(separator: ", ")): \(formatCount(result.tensors)) tensors, \(formatBytes(result.bytesWritten))"
             + (casts > 0 ? ", \(casts) cast to \(settings.dtype!.rawValue)" : ""), quiet: common.quiet)
    }
}
