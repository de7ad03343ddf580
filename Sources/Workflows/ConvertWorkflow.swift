import Foundation
import ONNX
import Surgery
import TensorFormats

/// What `convert` is told, as plain values.
public struct ConvertSettings: Sendable {
    public var input: String
    /// A file, a folder (an existing directory or a path ending in /), or `-`.
    public var output: String
    public var dtype: DType?
    public var selection = TensorSelection()
    /// Write shards of at most this many bytes plus an index.
    public var shardBytes: Int?
    /// `--to`: the output format when OUT's suffix does not say (it may not contradict it).
    public var to: OutputFormat?
    /// The format written: `to`, else OUT's suffix, else safetensors (`OutputFormat.resolve`), set by
    /// `ConvertWorkflow.run` once OUT is known not to be an input.
    public internal(set) var format = OutputFormat.safetensors
    /// zstd of a whole safetensors output, or an HDF5 dataset filter.
    public var compression: OutputCompression?
    public var hdf5Layout = HDF5WriteLayout.dmsurgery
    /// The bulk of the weights in this type (`OutputFormat.quant(named:)`; nil: each tensor's own type).
    public var quant: WeightQuant?
    /// A single file <-> pipeline conversion instead of a format conversion (formats/ldm.md).
    public var pipelineLayout: PipelineLayout?
    /// Options of a pipeline-layout conversion (EMA, prediction type, tokenizer).
    public var ldm = LDMConversionOptions()
    /// ONNX output: the parts, shapes, weight placement and quantization (formats/onnx.md).
    public var onnx = ONNXExportOptions()
    /// How inputs are read (`hdf5Layout` there is the input's layout).
    public var open = OpenOptions()
    /// `--lora-format`: translate a UNet LoRA file into this key dialect (formats/lora.md).
    public var loraFormat: LoRADialect?
    public var force = false
    public var quiet = false

    public init(input: String, output: String) {
        self.input = input
        self.output = output
    }
}

/// What `convert` wrote.
public struct ConvertOutcome: Sendable {
    public var result = ConvertResult()
    /// Tensors whose dtype changed.
    public var casts = 0
    /// Set by pipeline-layout conversions: the family, its components and the input tensors left out.
    public var layout: LDMConversionResult?
}

/// `convert`'s one path: every output format and layout is decided here from the settings (the CLI only
/// parses), and each writer places its output: one file or stream, a folder (weights + config.json),
/// shards with an index, HDF5, GGUF, a whole pipeline, or a single file <-> pipeline layout change.
public enum ConvertWorkflow {
    public static func run(_ request: ConvertSettings) throws -> ConvertOutcome {
        try InputSet.declare(inputs: [(request.input, "INPUT"), (request.onnx.unet, "--unet")],
                             outputs: [(request.output, "OUT"), (shardFolder(request), "OUT (its shards)")])
        var settings = request
        settings.format = try OutputFormat.resolve(output: settings.output, to: settings.to)
        try check(settings)
        if let dialect = settings.loraFormat { return ConvertOutcome(result: try LoRAWorkflow.convert(settings, to: dialect)) }
        if settings.format == .onnx { return ConvertOutcome(result: try ONNXExport.run(settings)) }
        if let layout = settings.pipelineLayout { return try convertLayout(layout, settings) }
        if isPipelineConversion(input: settings.input, output: settings.output, format: settings.format) {
            return try convertPipeline(settings)
        }
        var checkpoint = try Checkpoint.open(settings.input, options: readOptions(settings))
        var plan = try ConvertPlan(checkpoint: checkpoint, dtype: settings.dtype, selection: settings.selection)
        var outcome = ConvertOutcome()
        switch settings.format {
        case .hdf5: outcome.result = try writeHDF5(plan, settings)
        case .gguf: outcome.result = try writeGGUF(plan, settings)
        case .torch: outcome.result = try writeTorch(plan, settings)
        case .onnx: preconditionFailure("ONNX output returns before a checkpoint is opened")
        case .safetensors: outcome.result = try writeSafetensors(&plan, checkpoint: &checkpoint, settings)
        }
        outcome.casts = plan.tensors.filter { $0.dtype != $0.source.dtype }.count
        return outcome
    }

    /// `--variant` names the files convert writes, and the files it reads when the input folder has them;
    /// a folder without them is read from its plain files, so that a variant can be made from it.
    static func readOptions(_ settings: ConvertSettings) -> OpenOptions {
        var options = settings.open
        if let variant = options.variant, isDirectory(settings.input),
           !PipelineFolder.weightNames(variant: variant).contains(where: { Files.exists((settings.input as NSString).appendingPathComponent($0)) }) {
            options.variant = nil
        }
        return options
    }

    /// The option combinations no writer takes, refused before anything is opened (the CLI checks the
    /// same table at parse time; library callers get the same answer here).
    public static func check(_ request: ConvertSettings) throws {
        var settings = request
        // A suffix convert does not write is refused by `run` (exit 2); the combinations are checked here
        // as if it were safetensors.
        do { settings.format = try OutputFormat.resolve(output: settings.output, to: settings.to) } catch let error as TensorFormatError where error.code == .unsupported {
            settings.format = settings.to ?? .safetensors
        }
        func refuse(_ message: String) throws -> Never { throw TensorFormatError(.invalidArgument, message, file: settings.output) }
        if settings.loraFormat != nil, settings.format != .safetensors || settings.dtype != nil || !settings.selection.only.isEmpty
            || !settings.selection.exclude.isEmpty || !settings.selection.renames.isEmpty || settings.shardBytes != nil
            || settings.compression != nil || settings.pipelineLayout != nil || settings.quant != nil {
            try refuse("--lora-format translates a LoRA file to safetensors alone (no --to, --dtype, --only, --exclude, --rename, --shard-size, --compress, --quant or --pipeline-layout)")
        }
        if let quant = settings.quant, !settings.format.quantChoices.contains(quant) {
            try refuse("--quant \(quant.name) does not apply to \(settings.format.rawValue) output")
        }
        if settings.format == .gguf && settings.dtype != nil { try refuse("--dtype does not apply to GGUF output: use --quant") }
        if settings.format != .safetensors && settings.shardBytes != nil { try refuse("--shard-size applies to safetensors output only") }
        if settings.format == .gguf && settings.compression != nil { try refuse("GGUF output is not compressed: use --quant") }
        if settings.format == .torch && settings.compression != nil { try refuse("torch output is not compressed") }
        if settings.format == .onnx {
            if settings.output == "-" { try refuse("ONNX output is written to a file or folder, not standard output") }
            if settings.dtype != nil || !settings.selection.only.isEmpty || !settings.selection.exclude.isEmpty || !settings.selection.renames.isEmpty
                || settings.shardBytes != nil || settings.compression != nil || settings.pipelineLayout != nil {
                try refuse("ONNX output takes --static, --part, --unet, --external-data, --quant and --block-size (no --dtype, --only, --exclude, --rename, --shard-size, --compress or --pipeline-layout)")
            }
        } else if settings.onnx.unet != nil || settings.onnx.part != nil || settings.onnx.io.fixed != nil || settings.onnx.externalData {
            try refuse("--static, --part, --unet, --external-data and --block-size apply to ONNX output (.onnx or --to onnx)")
        }
        if settings.format == .torch && settings.pipelineLayout == nil && (settings.output.hasSuffix("/") || isDirectory(settings.output)) {
            try refuse("torch output is one file, not a folder")
        }
        if settings.pipelineLayout != nil, !settings.selection.only.isEmpty || !settings.selection.exclude.isEmpty || !settings.selection.renames.isEmpty
            || settings.shardBytes != nil || settings.compression != nil || settings.dtype != nil {
            try refuse("--pipeline-layout conversions take no --dtype, --only, --exclude, --rename, --shard-size or --compress")
        }
        if settings.pipelineLayout == nil, isPipelineConversion(input: settings.input, output: settings.output, format: settings.format),
           !settings.selection.only.isEmpty || !settings.selection.exclude.isEmpty || !settings.selection.renames.isEmpty
            || settings.shardBytes != nil || settings.compression != nil {
            try refuse("a whole pipeline is converted with --dtype and --variant only (no --only, --exclude, --rename, --shard-size or --compress)")
        }
        if settings.pipelineLayout == .diffusers && settings.format != .safetensors {
            try refuse("--pipeline-layout diffusers writes a safetensors pipeline folder, not \(settings.format.rawValue)")
        }
        if settings.pipelineLayout == .ldm && settings.format != .safetensors && settings.format != .gguf {
            try refuse("--pipeline-layout ldm writes a safetensors single file or a GGUF UNet, not \(settings.format.rawValue)")
        }
    }

    /// `--pipeline-layout`: an original single file -> a diffusers pipeline folder, or a pipeline (UNet)
    /// folder -> the single file (a ComfyUI-GGUF UNet for GGUF output), formats/ldm.md and gguf.md.
    private static func convertLayout(_ layout: PipelineLayout, _ settings: ConvertSettings) throws -> ConvertOutcome {
        var options = settings.ldm
        options.variant = settings.open.variant
        let randomAccess = OpenOptions(randomAccess: true, allowUnsafeHDF5: settings.open.allowUnsafeHDF5, variant: settings.open.variant)
        let result: LDMConversionResult
        switch layout {
        case .diffusers:
            result = try LDMConversion.toDiffusers(try Checkpoint.open(settings.input, options: randomAccess), folder: settings.output, options: options)
        case .ldm where settings.format == .gguf:
            result = try unetToComfyGGUF(settings, options: randomAccess)
        case .ldm where PipelineFolder.isPipeline(settings.input):
            result = try LDMConversion.toLDM(try PipelineFolder(path: settings.input, variant: settings.open.variant), output: settings.output, options: options)
        case .ldm:
            // A UNet model folder (or file with its config) becomes a UNet-only original file.
            result = try LDMConversion.unetToLDM(try Checkpoint.open(settings.input, options: randomAccess), output: settings.output)
        }
        var outcome = ConvertOutcome(layout: result)
        outcome.result.files = result.files
        outcome.result.tensors = result.tensors
        outcome.result.bytesWritten = result.bytesWritten
        return outcome
    }

    /// The UNet (a pipeline's unet/) with original names, as ComfyUI-GGUF's convert.py and llama-quantize
    /// lay SD UNets out (formats/gguf.md).
    private static func unetToComfyGGUF(_ settings: ConvertSettings, options: OpenOptions) throws -> LDMConversionResult {
        let unet: Checkpoint
        if PipelineFolder.isPipeline(settings.input) {
            guard let opened = try PipelineFolder(path: settings.input, variant: settings.open.variant).open("unet", options: options) else {
                throw TensorFormatError(.ldmMissingTensor, "the pipeline has no unet/ with safetensors weights", file: settings.input)
            }
            unet = opened
        } else {
            unet = try Checkpoint.open(settings.input, options: options)
        }
        let out = try OutputFile(path: settings.output, force: settings.force)
        let result = try LDMConversion.unetToGGUF(unet, output: out, quant: settings.quant?.ggmlType)
        try unet.finish()
        try out.commit()
        return result
    }

    /// Where shards are written (OUT's folder), when they are.
    private static func shardFolder(_ settings: ConvertSettings) -> String? {
        let output = settings.output
        guard settings.shardBytes != nil, output != "-" else { return nil }
        if output.hasSuffix("/") || isDirectory(output) { return output }
        let parent = (output as NSString).deletingLastPathComponent
        return parent.isEmpty ? "." : parent
    }

    private static func writeHDF5(_ plan: ConvertPlan, _ settings: ConvertSettings) throws -> ConvertResult {
        let bar = ProgressBar("convert", total: plan.tensors.reduce(0) { $0 + $1.source.byteCount }, quiet: settings.quiet)
        defer { bar.finish() }
        var result = ConvertResult()
        try Converter.writeHDF5(plan, metadata: plan.metadata(embedConfig: true), to: settings.output, force: settings.force,
                                layout: settings.hdf5Layout, compression: settings.compression, progress: bar.update, result: &result)
        try plan.checkpoint.finish()
        result.files.append(settings.output)
        return result
    }

    /// GGUF (formats/gguf.md): quantized blocks as gguf-py writes them, streamed tensor by tensor.
    private static func writeGGUF(_ plan: ConvertPlan, _ settings: ConvertSettings) throws -> ConvertResult {
        let bar = ProgressBar("convert", total: plan.tensors.reduce(0) { $0 + $1.source.byteCount }, quiet: settings.quiet)
        defer { bar.finish() }
        var result = ConvertResult()
        let out = try OutputFile(path: settings.output, force: settings.force)
        try Converter.writeGGUF(plan, quant: settings.quant?.ggmlType, metadata: plan.metadata(embedConfig: true), to: out,
                                progress: bar.update, result: &result)
        try plan.checkpoint.finish()
        try out.commit()
        result.files.append(settings.output)
        return result
    }

    /// A `torch.save` zip (formats/pickle.md, "Writing"), one file or stream.
    private static func writeTorch(_ plan: ConvertPlan, _ settings: ConvertSettings) throws -> ConvertResult {
        let bar = ProgressBar("convert", total: plan.tensors.reduce(0) { $0 + $1.source.byteCount }, quiet: settings.quiet)
        defer { bar.finish() }
        if plan.checkpoint.configJSON != nil {
            note("note: torch files hold no metadata; the model's config.json does not travel with \(settings.output)", quiet: settings.quiet)
        }
        var result = ConvertResult()
        let out = try OutputFile(path: settings.output, force: settings.force)
        try Converter.writeTorch(plan, to: out, progress: bar.update, result: &result)
        try plan.checkpoint.finish()
        try out.commit()
        result.files.append(settings.output)
        return result
    }

    /// One file or stream, a folder, or shards; a stream input is spooled when the output needs another order.
    private static func writeSafetensors(_ plan: inout ConvertPlan, checkpoint: inout Checkpoint,
                                         _ settings: ConvertSettings) throws -> ConvertResult {
        let output = settings.output
        let folder = output != "-" && (output.hasSuffix("/") || isDirectory(output))
        let base = folder ? folderWeights(output, hasConfig: checkpoint.configJSON != nil, variant: settings.open.variant) : output
        // A folder or a shard set carries the config as config.json beside the weights instead.
        let embedConfig = !folder && settings.shardBytes == nil
        let metadata = plan.metadata(embedConfig: embedConfig)
        let layout = SafetensorsWriter(tensors: plan.specs, metadata: metadata).header
        if checkpoint.isSequential && (settings.shardBytes != nil || plan.needsReordering(for: layout)) {
            checkpoint = try checkpoint.withRandomAccess()
            plan = try ConvertPlan(checkpoint: checkpoint, dtype: settings.dtype, selection: settings.selection)
        }
        if folder {
            try OutputFile.createFolder(output)
        }

        let bar = ProgressBar("convert", total: plan.tensors.reduce(0) { $0 + $1.source.byteCount }, quiet: settings.quiet)
        defer { bar.finish() }
        var result = ConvertResult()
        if let maxBytes = settings.shardBytes {
            try Converter.writeSharded(plan, base: base, maxBytes: maxBytes, metadata: metadata, progress: bar.update, result: &result)
        } else {
            let out = try OutputFile(path: base, force: settings.force)
            if let compression = settings.compression { out.zstd = try ZstdEncoder(level: compression.level) }
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

    private static func folderWeights(_ folder: String, hasConfig: Bool, variant: String?) -> String {
        (folder.hasSuffix("/") ? folder : folder + "/") + LDMConversion.weightsName(hasConfig ? "diffusion_pytorch_model" : "model", variant: variant)
    }
}

func isDirectory(_ path: String) -> Bool { Files.isDirectory(path) }
