import CLIP
import Foundation
import ModelGraph
import ONNX
import Surgery
import TensorFormats
import VAE

/// A whole SD 1.x/2.x pipeline in the folder layout diffusers' OnnxStableDiffusionPipeline (and Optimum)
/// load: `text_encoder/`, `unet/`, `vae_encoder/`, `vae_decoder/` with a `model.onnx` each, `tokenizer/`
/// and `scheduler/` copied, and a `model_index.json` naming the ONNX parts `OnnxRuntimeModel`. Every
/// file goes through `OutputFile` and all are committed together at the end, so an error leaves no half
/// pipeline (as `convert PIPELINE OUT/` does for safetensors).
extension ONNXExport {
    /// Fixed shapes of a pipeline (`--static BATCHxHxW`, the image's sides): the text encoder runs on
    /// BATCH prompts, the UNet on 2 BATCH latents (classifier-free guidance joins the two halves) of
    /// H/f x W/f, and both VAE halves on one image at a time, as the pipeline calls them.
    static func pipelineShapes(_ io: IOShape, downscale: Int) -> (text: IOShape, unet: IOShape, vae: IOShape) {
        guard let fixed = io.fixed else { return (io, io, io) }
        return (IOShape(fixed: fixed), IOShape(fixed: (2 * fixed.batch, fixed.height / downscale, fixed.width / downscale)),
                IOShape(fixed: (1, fixed.height, fixed.width)))
    }

    static func exportPipeline(_ settings: ConvertSettings) throws -> ConvertResult {
        let input = settings.input, output = settings.output
        try ConvertWorkflow.refuseInside(output, input: input)
        let pipeline = try PipelineFolder(path: input, variant: settings.open.variant)
        guard let textEncoder = try pipeline.open("text_encoder", options: OpenOptions(randomAccess: true)),
              let vae = try pipeline.open("vae", options: OpenOptions(randomAccess: true)) else {
            throw TensorFormatError(.unsupported, "an ONNX pipeline needs text_encoder/ and vae/ with weights (SD 1.x/2.x)", file: input)
        }
        if pipeline.component("text_encoder_2") != nil {
            throw TensorFormatError(.unsupported, "SDXL pipelines (text_encoder_2/) have no OnnxStableDiffusionPipeline layout", file: input)
        }
        let unet: Checkpoint
        if let student = settings.onnx.unet {
            unet = try openCheckpoint(student, settings.open, randomAccess: true)
        } else if let own = try pipeline.open("unet", options: OpenOptions(randomAccess: true)) {
            unet = own
        } else {
            throw TensorFormatError(.unsupported, "the pipeline has no unet/ with weights", file: input)
        }
        let vaeConfig = try VAEConfig(json: vae.configJSON ?? "", file: vae.name + "/config.json")
        let textConfig = try CLIPTextConfig(json: textEncoder.configJSON ?? "", file: textEncoder.name + "/config.json")
        let shapes = pipelineShapes(settings.onnx.io, downscale: vaeConfig.downscale)

        // Build every graph before writing anything: a student that does not fit fails before any output.
        let student = try unetGraph(unet, io: shapes.unet, sequence: textConfig.maxPositions, contextDim: textConfig.hiddenSize)
        let parts: [(String, Graph, Checkpoint)] = [
            ("text_encoder", try modelGraph(textEncoder, part: nil, io: shapes.text, sequence: textConfig.maxPositions).0, textEncoder),
            ("unet", student.0, student.1),
            ("vae_encoder", try modelGraph(vae, part: .encoder, io: shapes.vae, sequence: 0).0, vae),
            ("vae_decoder", try modelGraph(vae, part: .decoder, io: shapes.vae, sequence: 0).0, vae),
        ]

        try ConvertWorkflow.makeFolder(output)
        var pending: [OutputFile] = []
        var result = ConvertResult()
        do {
            for (name, graph, source) in parts {
                let folder = ConvertWorkflow.join(output, name)
                try ConvertWorkflow.makeFolder(folder)
                // The VAE stays float: its decoder's output is the picture itself.
                pending += try write(graph, from: source, to: ConvertWorkflow.join(folder, "model.onnx"), settings,
                                     quantized: !name.hasPrefix("vae"), label: "convert \(name)", result: &result)
            }
            func copy(_ from: String, to path: String) throws {
                try pipeline.refuseLinkOutside(from)
                let out = try OutputFile(path: path, force: settings.force)
                try out.write(try MappedFile.contents(of: from))
                pending.append(out)
                result.files.append(path)
            }
            for name in ["tokenizer", "scheduler"] {
                guard let folder = pipeline.component(name)?.path else {
                    throw TensorFormatError(.notFound, "the pipeline has no \(name)/ folder", file: input)
                }
                let target = ConvertWorkflow.join(output, name)
                try ConvertWorkflow.makeFolder(target)
                try pipeline.refuseLinkOutside(folder)
                try ConvertWorkflow.copyFiles(of: folder, to: target, skippingWeights: false, pipeline: pipeline, copy: copy)
            }
            let index = try OutputFile(path: ConvertWorkflow.join(output, "model_index.json"), force: settings.force)
            try index.write(Array(try modelIndex(of: input).utf8))
            pending.append(index)
            result.files.append(index.path)
        } catch {
            for file in pending { file.discard() }
            throw error
        }
        try OutputFile.commitTogether(pending)
        return result
    }

    /// The pipeline's UNet (or the student replacing it): a UNet2DConditionModel whose cross-attention
    /// reads the text encoder's width.
    private static func unetGraph(_ checkpoint: Checkpoint, io: IOShape, sequence: Int, contextDim: Int) throws -> (Graph, Checkpoint) {
        guard family(of: checkpoint) == .unet else {
            throw TensorFormatError(.invalidArgument, "the pipeline's UNet (--unet) is not a UNet2DConditionModel", file: checkpoint.name)
        }
        let (graph, source) = try modelGraph(checkpoint, part: nil, io: io, sequence: sequence)
        guard let context = graph.inputs.first(where: { $0.name == "encoder_hidden_states" })?.shape.last,
              context == .fixed(contextDim) else {
            throw TensorFormatError(.invalidShape, "the UNet's cross-attention does not read the text encoder's width \(contextDim)",
                                    file: checkpoint.name)
        }
        return (graph, source)
    }

    /// OnnxStableDiffusionPipeline's model_index.json: the input's tokenizer and scheduler classes, the
    /// four ONNX parts as `["diffusers", "OnnxRuntimeModel"]`, no safety checker; keys sorted as
    /// diffusers writes them.
    static func modelIndex(of pipeline: String) throws -> String {
        let path = ConvertWorkflow.join(pipeline, "model_index.json")
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              case .object(let members)? = try? JSONParser.parse(text) else {
            throw TensorFormatError(.invalidConfig, "not a JSON object", file: path)
        }
        func pair(_ key: String) throws -> String {
            guard case .array(let list)? = members.last(where: { $0.key == key })?.value, list.count == 2,
                  case .string(let library) = list[0], case .string(let name) = list[1] else {
                throw TensorFormatError(.invalidConfig, "\(key) is not a [library, class] pair", file: path)
            }
            return "[\(quoted(library)), \(quoted(name))]"
        }
        var version = "0.42.1"
        if case .string(let v)? = members.last(where: { $0.key == "_diffusers_version" })?.value { version = v }
        let onnx = "[\"diffusers\", \"OnnxRuntimeModel\"]"
        return """
        {
          "_class_name": "OnnxStableDiffusionPipeline",
          "_diffusers_version": \(quoted(version)),
          "feature_extractor": [null, null],
          "requires_safety_checker": false,
          "safety_checker": [null, null],
          "scheduler": \(try pair("scheduler")),
          "text_encoder": \(onnx),
          "tokenizer": \(try pair("tokenizer")),
          "unet": \(onnx),
          "vae_decoder": \(onnx),
          "vae_encoder": \(onnx)
        }

        """
    }

    /// A JSON string literal.
    private static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
