import ArgumentParser
import Foundation
import Surgery
import TensorFormats
import Workflows

extension OutputFormat: ExpressibleByArgument {}
extension PipelineLayout: ExpressibleByArgument {}
extension HDF5WriteLayout: ExpressibleByArgument {}

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a checkpoint: cast dtypes, select and rename tensors, shard, change format or layout.",
        discussion: """
        The output format follows --to, else OUT's suffix (a trailing .zst aside), else safetensors (a \
        stream, a folder, a name without a known suffix). A suffix that names a format convert does not \
        write (.ckpt, .pt, .pth, .bin, .mlpackage, ...) is refused (exit 2) rather than given the wrong \
        bytes. The formats:
        \(OutputFormat.allCases.map { "  \($0.rawValue) (\($0.suffixes.joined(separator: ", "))): \($0.summary)" }.joined(separator: "\n"))

        Casts apply to floating-point tensors only and round to nearest even as torch does; values that \
        overflow the target are reported. OUT may be a folder (an existing directory or a path ending in /): \
        it receives diffusion_pytorch_model.safetensors and config.json when the input has a model config, \
        else model.safetensors (with --variant's name). With --shard-size, shards and an index are written as \
        huggingface_hub does. A model config travels inside single-file and stream outputs as the \
        dmsurgery.config metadata key. Outputs are written to a temporary file, fsynced and renamed: an error \
        or interrupt leaves nothing. Inputs compressed with zstd are read transparently (formats/hdf5.md, \
        formats/zstd.md, formats/gguf.md).

        --pipeline-layout diffusers turns an original single-file Stable Diffusion checkpoint (SD 1.x, 2.x, \
        XL) into a diffusers pipeline folder, --pipeline-layout ldm a pipeline folder into the single file \
        (formats/ldm.md); with a .gguf OUT it writes the UNet with its original names as ComfyUI-GGUF's \
        convert.py and llama-quantize do (sd1/sdxl, formats/gguf.md). A pipeline folder converted to a folder \
        is re-saved whole: every component's weights converted (--dtype) under --variant's names, \
        model_index.json, configs, scheduler/ and tokenizer/ copied (formats/ldm.md, "Re-saving a \
        pipeline"). --layout, the old name of --input-layout, --hdf5-layout and --pipeline-layout, is \
        accepted for one more release. --lora-format kohya|peft translates a UNet LoRA file between the two \
        key dialects (float32 safetensors out; kohya's alpha folded into PEFT's lora_B), formats/lora.md.

        Exit status: 0 success; 2 invalid or unreadable input, an unwritable suffix, or an I/O error; 64 usage error.
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

    @Option(help: ArgumentHelp("Store the bulk of the weights in this type: "
                               + OutputFormat.allCases.filter { !$0.quantNames.isEmpty }.map { "\($0.rawValue) \($0.quantNames.joined(separator: "|"))" }.joined(separator: "; ")
                               + " (default: each tensor's own type).", valueName: "type"))
    var quant: String?

    @Option(name: .customLong("hdf5-layout"), help: "HDF5 output: dmsurgery (default, round-trips exactly) or keras3.")
    var hdf5Layout: HDF5WriteLayout?

    @Option(name: .customLong("pipeline-layout"), help: "diffusers: an original single file to a pipeline folder; ldm: a pipeline (or UNet) folder to the single file.")
    var pipelineLayout: PipelineLayout?

    @Option(name: .customLong("lora-format"), help: "Translate a UNet LoRA file into this key dialect: peft (diffusers) or kohya (kohya-ss, A1111, ComfyUI); a key it cannot map exits 2 naming it (formats/lora.md).")
    var loraFormat: LoRADialect?

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
        if inputOptions.layout != nil && (hdf5Layout != nil || pipelineLayout != nil) {
            throw ValidationError("--layout is the old name of --hdf5-layout and --pipeline-layout: give only the new options")
        }
        // Usage errors the workflow would also find, reported at parse time with exit 64. A suffix naming
        // a format convert does not write is not a usage error: run() refuses it (exit 2).
        do {
            var settings = try settings()
            settings.quant = try quant.map(quantFormat.quant(named:))
            settings.onnx = onnx.options(quant: settings.quant)
            try ConvertWorkflow.check(settings)
        } catch let error as TensorFormatError where error.code == .invalidArgument {
            throw ValidationError(error.message)
        }
        if legacyLayout.hdf5 != nil || hdf5Layout != nil, !isHDF5Output {
            throw ValidationError("--hdf5-layout applies to HDF5 output only (a .h5 or .hdf5 OUT or --to hdf5)")
        }
        if isHDF5Output && output.lowercased().hasSuffix(".zst") {
            throw ValidationError("HDF5 output is compressed inside the file: use --compress, not a .zst suffix")
        }
        if !isHDF5Output, let compression = outputCompression, compression.codec != .zstd {
            throw ValidationError("safetensors output is compressed with zstd only (got '\(compress!)')")
        }
        if outputCompression != nil, shardSize != nil {
            throw ValidationError("--compress does not apply to sharded output")
        }
    }

    private var isHDF5Output: Bool { (try? OutputFormat.resolve(output: output, to: to)) == .hdf5 }

    /// The format whose `--quant` types apply (OUT's suffix refused later is read as --to or safetensors).
    private var quantFormat: OutputFormat { (try? OutputFormat.resolve(output: output, to: to)) ?? to ?? .safetensors }

    /// The deprecated `--layout` value read as the option that replaces it.
    private var legacyLayout: (pipeline: PipelineLayout?, hdf5: String?, input: String?) {
        guard let layout = inputOptions.layout else { return (nil, nil, nil) }
        if let pipeline = PipelineLayout(rawValue: layout) { return (pipeline, nil, nil) }
        return isHDF5Output ? (nil, layout, nil) : (nil, nil, layout)
    }

    /// --compress, or zstd at the default level for a .zst output.
    private var outputCompression: OutputCompression? {
        if let compress { return OutputCompression(parsing: compress) }
        return output.lowercased().hasSuffix(".zst") ? OutputCompression(codec: .zstd, level: Zstd.defaultLevel) : nil
    }

    /// Every option as the workflow takes it; the format is resolved by the caller.
    private func settings() throws -> ConvertSettings {
        var settings = ConvertSettings(input: input, output: output)
        settings.dtype = dtype.flatMap(DType.init(userName:))
        settings.selection = TensorSelection(only: only, exclude: exclude, renames: rename.compactMap(RenameRule.init(argument:)))
        settings.shardBytes = shardSize.flatMap(parseByteSize)
        settings.compression = outputCompression
        settings.to = to
        settings.open = inputOptions.open
        let legacy = legacyLayout
        settings.open.hdf5Layout = inputOptions.inputLayout ?? legacy.input
        settings.pipelineLayout = pipelineLayout ?? legacy.pipeline
        if let name = hdf5Layout?.rawValue ?? legacy.hdf5 {
            guard let layout = HDF5WriteLayout(rawValue: name) else {
                throw TensorFormatError(.invalidArgument, "--hdf5-layout is one of \(HDF5WriteLayout.allCases.map(\.rawValue).joined(separator: ", ")) (got '\(name)')")
            }
            settings.hdf5Layout = layout
        }
        settings.ldm = LDMConversionOptions(ema: layoutOptions.ema, prediction: layoutOptions.predictionType, tokenizer: layoutOptions.tokenizer)
        settings.loraFormat = loraFormat
        settings.force = binary.force
        settings.quiet = common.quiet
        return settings
    }

    func run() throws {
        var settings = try settings()
        settings.quant = try quant.map(quantFormat.quant(named:))
        settings.onnx = onnx.options(quant: settings.quant)
        let outcome = try ConvertWorkflow.run(settings)
        let result = outcome.result
        for overflow in result.overflows {
            note("warning: \(formatCount(overflow.count)) values overflowed \(settings.dtype?.rawValue ?? "the target type") (tensor '\(overflow.tensor)')", quiet: common.quiet)
        }
        if let layout = outcome.layout {
            if !layout.skipped.isEmpty {
                note("left out \(layout.skipped.count) tensors no component holds (e.g. '\(layout.skipped[0])')", quiet: common.quiet)
            }
            note("wrote \(output) (\(layout.family.rawValue): \(layout.components.joined(separator: ", "))): \(formatCount(result.tensors)) tensors, \(formatBytes(result.bytesWritten))", quiet: common.quiet)
            return
        }
        note("wrote \(result.files.joined(separator: ", ")): \(formatCount(result.tensors)) tensors, \(formatBytes(result.bytesWritten))"
             + (outcome.casts > 0 ? ", \(outcome.casts) cast to \(settings.dtype!.rawValue)" : ""), quiet: common.quiet)
    }
}

/// Options of `convert --pipeline-layout diffusers|ldm` (original single files <-> diffusers pipeline folders).
struct LayoutOptions: ParsableArguments {
    @Flag(help: "With --pipeline-layout diffusers: take the UNet from the model_ema.* weights.")
    var ema = false

    @Option(name: .customLong("prediction-type"), help: ArgumentHelp("With --pipeline-layout diffusers: epsilon or v_prediction (the weights cannot tell; default: SD2 v_prediction, others epsilon).", valueName: "type"))
    var predictionType: String?

    @Option(help: ArgumentHelp("With --pipeline-layout diffusers: CLIP's BPE file (bpe_simple_vocab_16e6.txt, gunzipped from open_clip) to build tokenizer/ (and tokenizer_2/) from, or a tokenizer folder to copy.", valueName: "file-or-folder"))
    var tokenizer: String?

    func validate() throws {
        if let predictionType, !["epsilon", "v_prediction"].contains(predictionType) {
            throw ValidationError("--prediction-type is epsilon or v_prediction (got '\(predictionType)')")
        }
    }
}
