import Foundation
import Surgery
import TensorFormats

/// Output formats `convert` can write.
public enum OutputFormat: String, CaseIterable, Sendable {
    case safetensors
    case hdf5
    case gguf
    case onnx
}

/// What `convert` is told, as plain values.
public struct ConvertSettings: Sendable {
    public var input: String
    /// A file, a folder (an existing directory or a path ending in /), or `-`.
    public var output: String
    public var dtype: DType?
    public var selection = TensorSelection()
    /// Write shards of at most this many bytes plus an index.
    public var shardBytes: Int?
    public var format = OutputFormat.safetensors
    /// zstd of a whole safetensors output, or an HDF5 dataset filter.
    public var compression: OutputCompression?
    public var hdf5Layout = HDF5WriteLayout.dmsurgery
    /// GGUF output: the type of the bulk of the weights (nil: each tensor's own float type).
    public var quant: GGMLType?
    /// ONNX output: the parts, shapes and weight placement (formats/onnx.md).
    public var onnx = ONNXExportOptions()
    /// How inputs are read (`hdf5Layout` there is the input's layout).
    public var open = OpenOptions()
    public var force = false
    public var quiet = false

    public init(input: String, output: String) {
        self.input = input
        self.output = output
    }
}

/// `convert`'s body and its output placement: one file or stream, a folder (weights + config.json),
/// shards with an index, or HDF5.
public enum ConvertWorkflow {
    /// Converts; returns what was written and how many tensors were cast.
    public static func run(_ settings: ConvertSettings) throws -> (result: ConvertResult, casts: Int) {
        if settings.format == .onnx { return (try ONNXExport.run(settings), 0) }
        try InputSet.declare(inputs: [(settings.input, "INPUT")],
                             outputs: [(settings.output, "OUT"), (shardFolder(settings), "OUT (its shards)")])
        if isPipelineConversion(input: settings.input, output: settings.output, format: settings.format) {
            return try convertPipeline(settings)
        }
        var checkpoint = try Checkpoint.open(settings.input, options: settings.open)
        var plan = try ConvertPlan(checkpoint: checkpoint, dtype: settings.dtype, selection: settings.selection)
        let result: ConvertResult
        switch settings.format {
        case .hdf5: result = try writeHDF5(plan, settings)
        case .gguf: result = try writeGGUF(plan, settings)
        case .safetensors: result = try writeSafetensors(&plan, checkpoint: &checkpoint, settings)
        case .onnx: preconditionFailure("ONNX output returns before a checkpoint is opened")
        }
        return (result, plan.tensors.filter { $0.dtype != $0.source.dtype }.count)
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
        try Converter.writeGGUF(plan, quant: settings.quant, metadata: plan.metadata(embedConfig: true), to: out,
                                progress: bar.update, result: &result)
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
            do { try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true) } catch {
                throw TensorFormatError(.io, "cannot create the folder: \(error.localizedDescription)", file: output)
            }
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

public func hasHDF5Suffix(_ path: String) -> Bool {
    let lower = path.lowercased()
    return lower.hasSuffix(".h5") || lower.hasSuffix(".hdf5")
}

func isDirectory(_ path: String) -> Bool {
    var isDir: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
}
