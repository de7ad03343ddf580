import CLIP
import Foundation
import ModelGraph
import ONNX
import Surgery
import TensorFormats
import UNet
import VAE

/// What `convert … --to onnx` is told besides INPUT and OUT (formats/onnx.md).
public struct ONNXExportOptions: Sendable {
    /// A pipeline export: the UNet to ship instead of the pipeline's own (a pruned or unlearned student).
    public var unet: String?
    /// A VAE exports one half per file.
    public var part: VAEGraph.Part?
    /// Fixed sizes (`--static BATCHxHxW`), else named dims.
    public var io = IOShape.dynamic
    /// Weights as external data even below the 2 GB protobuf limit.
    public var externalData = false
    /// Weight-only quantization (`--quant int8|int4`, `--block-size`); a pipeline's VAE stays float.
    public var quantization: WeightQuantization?

    public init() {}
}

/// `convert MODEL out.onnx` and `convert PIPELINE OUT/ --to onnx`: graphs built from the engine's own
/// descriptions of the models (`ModelGraph`), written by `ONNXModelWriter` with the weights streamed
/// from the mapped checkpoints one tensor at a time.
public enum ONNXExport {
    /// The token length of `encoder_hidden_states` in a fixed-shape UNet file (CLIP's 77 positions).
    static let defaultSequence = 77

    /// True when INPUT is a pipeline folder (exported whole, to the OUT folder).
    public static func isPipelineExport(input: String) -> Bool { PipelineFolder.isPipeline(input) }

    /// Called by `ConvertWorkflow.run`, which declared the inputs (--unet among them) and outputs.
    public static func run(_ settings: ConvertSettings) throws -> ConvertResult {
        if isPipelineExport(input: settings.input) { return try exportPipeline(settings) }
        guard settings.onnx.unet == nil else {
            throw TensorFormatError(.invalidArgument, "--unet replaces a pipeline's UNet: INPUT must be a pipeline folder", file: settings.input)
        }
        let checkpoint = try openCheckpoint(settings.input, settings.open, randomAccess: true)
        let (graph, source) = try modelGraph(checkpoint, part: settings.onnx.part, io: settings.onnx.io, sequence: defaultSequence)
        var result = ConvertResult()
        let files = try write(graph, from: source, to: settings.output, settings, quantized: true, label: "convert", result: &result)
        try OutputFile.commitTogether(files)
        return result
    }

    /// The three model families a file can hold, told apart by their config.
    enum Family { case unet, textEncoder, vae }

    static func family(of checkpoint: Checkpoint) -> Family {
        guard let json = checkpoint.configJSON, case .object(let members)? = try? JSONParser.parse(json) else { return .unet }
        func string(_ key: String) -> String? {
            if case .string(let s)? = members.last(where: { $0.key == key })?.value { return s }
            return nil
        }
        if string("_class_name") == "AutoencoderKL" { return .vae }
        if string("model_type") == "clip_text_model" { return .textEncoder }
        if case .array(let names)? = members.last(where: { $0.key == "architectures" })?.value,
           names.contains(where: { if case .string(let s) = $0 { s.hasPrefix("CLIPText") } else { false } }) {
            return .textEncoder
        }
        return .unet
    }

    /// The graph of one model and the checkpoint its weights stream from (a UNet in an original-layout
    /// file or ComfyUI GGUF is read under its diffusers names).
    static func modelGraph(_ checkpoint: Checkpoint, part: VAEGraph.Part?, io: IOShape, sequence: Int) throws -> (Graph, Checkpoint) {
        let family = family(of: checkpoint)
        if part != nil && family != .vae {
            throw TensorFormatError(.invalidArgument, "--part applies to a VAE (AutoencoderKL) only", file: checkpoint.name)
        }
        switch family {
        case .unet:
            let source = try LDMConversion.diffusersUNetView(of: checkpoint) ?? checkpoint
            do {
                let structure = try UNetStructure(checkpoint: source)
                return (try UNetGraph.build(structure, shapes: shapes(source), file: source.name, io: io, sequence: sequence), source)
            } catch let error as UNetError {
                throw error.inFile(source.name)
            }
        case .textEncoder:
            let config = try CLIPTextConfig(json: checkpoint.configJSON ?? "", file: checkpoint.name + "/config.json")
            return (try CLIPTextGraph.build(config: config, shapes: shapes(checkpoint), file: checkpoint.name, io: io), checkpoint)
        case .vae:
            guard let part else {
                throw TensorFormatError(.invalidArgument, "a VAE file holds one half: say --part encoder or --part decoder", file: checkpoint.name)
            }
            let config = try VAEConfig(json: checkpoint.configJSON ?? "", file: checkpoint.name + "/config.json")
            return (try VAEGraph.build(part, config: config, shapes: shapes(checkpoint), file: checkpoint.name, io: io), checkpoint)
        }
    }

    static func shapes(_ checkpoint: Checkpoint) -> [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        for entry in checkpoint.entries { shapes[entry.name] = entry.shape }
        return shapes
    }

    /// Writes one model file (not committed), its weights read from `source` one tensor at a time and
    /// quantized on the way when `quantized` and the settings ask for it.
    static func write(_ graph: Graph, from source: Checkpoint, to path: String, _ settings: ConvertSettings, quantized: Bool,
                      label: String, result: inout ConvertResult) throws -> [OutputFile] {
        let quantization = quantized ? settings.onnx.quantization : nil
        let graph = quantization.map { $0.apply(to: graph) } ?? graph
        let bar = ProgressBar(label, total: graph.initializerBytes, quiet: settings.quiet)
        defer { bar.finish() }
        let files = try ONNXModelWriter.write(graph, to: path, force: settings.force, externalData: settings.onnx.externalData,
                                              metadata: source.configJSON.map { [(MetadataKey.config, $0)] } ?? [],
                                              weights: { try source.floats(named: $0) }, payloads: quantization?.payloads(),
                                              progress: bar.update)
        result.tensors += graph.initializers.count
        result.bytesWritten += files.reduce(0) { $0 + $1.bytesWritten }
        result.files += files.map(\.path)
        return files
    }
}
