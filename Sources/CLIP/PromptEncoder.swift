import TensorMath

/// The conditioning a pipeline's text encoders give a prompt, as diffusers' `encode_prompt` makes it.
///
/// - One encoder (SD 1.x, 2.x): `last_hidden_state` [77, D] (SD 2.x pipelines' 23-layer config already
///   stops one layer short of the 24-layer OpenCLIP model).
/// - Two encoders (SDXL): `hidden_states[-2]` of each, concatenated on the feature axis (768 + 1280 =
///   2048), and the second encoder's projected pooled output `text_embeds` [P].
/// - One encoder named `text_encoder_2` only (SDXL refiner): its `hidden_states[-2]` and `text_embeds`.
/// The empty prompt (classifier-free guidance's unconditional input) is encoded the same way, except
/// that SDXL pipelines with `force_zeros_for_empty_prompt` (model_index.json; true when absent for two
/// encoders, as in diffusers' StableDiffusionXLPipeline) use zeros of the same shapes.
public struct PromptEncoder: Sendable {
    public let tokenizers: [CLIPTokenizer]
    public let encoders: [CLIPTextModel]
    /// Whether this is the SDXL family's rule (penultimate layer, pooled projection).
    public let penultimate: Bool
    public let zerosForEmptyPrompt: Bool

    public init(pipeline path: String) throws {
        let folder = PipelineParts(path)
        let pairs = try folder.textEncoders()
        tokenizers = try pairs.map { pair throws(CLIPError) in try CLIPTokenizer(folder: pair.tokenizer) }
        encoders = try pairs.map { try CLIPTextModel(path: $0.encoder) }
        penultimate = pairs.count == 2 || pairs[0].encoder.hasSuffix("text_encoder_2")
        zerosForEmptyPrompt = penultimate && (folder.indexFlag("force_zeros_for_empty_prompt") ?? true)
        for (index, (tokenizer, encoder)) in zip(tokenizers, encoders).enumerated() {
            guard tokenizer.maxLength <= encoder.config.maxPositions else {
                throw CLIPError(.modelBadConfig, "tokenizer length \(tokenizer.maxLength) exceeds the text encoder's \(encoder.config.maxPositions) positions", file: pairs[index].encoder)
            }
            guard tokenizer.vocabularySize <= encoder.config.vocabularySize else {
                throw CLIPError(.modelBadConfig, "tokenizer has \(tokenizer.vocabularySize) tokens, the text encoder's embedding \(encoder.config.vocabularySize)", file: pairs[index].encoder)
            }
            if tokenizer.maxLength != tokenizers[0].maxLength {
                throw CLIPError(.modelBadConfig, "the two tokenizers pad to different lengths", file: pairs[index].tokenizer)
            }
        }
        if penultimate, encoders.last?.projection == nil {
            throw CLIPError(.modelMissingParameter, "the last text encoder of an SDXL pipeline needs text_projection.weight", file: pairs.last!.encoder, tensor: "text_projection.weight")
        }
    }

    /// Feature width of the conditioning (sum over encoders).
    public var width: Int { encoders.map(\.config.hiddenSize).reduce(0, +) }
    public var length: Int { tokenizers[0].maxLength }
    /// Width of the pooled embedding, nil unless `penultimate`.
    public var pooledWidth: Int? { penultimate ? encoders.last!.config.projectionSize : nil }

    /// hidden [N, S, D] and pooled [N, P] (nil outside SDXL) of `prompts`, in batches of `batch`.
    public func encode(_ prompts: [String], batch: Int = 8) throws -> (hidden: Tensor, pooled: Tensor?) {
        let n = prompts.count, s = length, d = width
        var hidden = [Float](repeating: 0, count: n * s * d)
        var pooled = [Float](repeating: 0, count: n * (pooledWidth ?? 0))
        var start = 0
        while start < n {
            let chunk = Array(prompts[start..<min(n, start + batch)])
            var offset = 0
            for (tokenizer, encoder) in zip(tokenizers, encoders) {
                let ids = try chunk.map { text throws(CLIPError) in try tokenizer.inputIDs(text) }
                let out = try encoder.forward(ids)
                let h = penultimate ? out.hiddenStates[out.hiddenStates.count - 2] : out.lastHiddenState
                let w = encoder.config.hiddenSize
                for r in 0..<chunk.count {
                    for t in 0..<s {
                        let src = (r * s + t) * w, dst = ((start + r) * s + t) * d + offset
                        for i in 0..<w { hidden[dst + i] = h.data[src + i] }
                    }
                }
                offset += w
                if penultimate, encoder.projection != nil, let p = pooledWidth, let embeds = out.textEmbeds {
                    for r in 0..<chunk.count { for i in 0..<p { pooled[(start + r) * p + i] = embeds.data[r * p + i] } }
                }
            }
            start += chunk.count
        }
        return (Tensor(shape: [n, s, d], data: hidden), pooledWidth.map { Tensor(shape: [n, $0], data: pooled) })
    }

    /// The unconditional input: hidden [S, D] and pooled [P] (nil outside SDXL).
    public func emptyPrompt() throws -> (hidden: Tensor, pooled: Tensor?) {
        if zerosForEmptyPrompt {
            return (Tensor(zeros: [length, width]), pooledWidth.map { Tensor(zeros: [$0]) })
        }
        let (h, p) = try encode([""])
        return (h.reshaped([length, width]), p.map { $0.reshaped([$0.count]) })
    }
}
