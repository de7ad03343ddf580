import TensorMath

/// CLIP's text transformer (transformers' `CLIPTextModel`, and `CLIPTextModelWithProjection` when
/// `text_projection.weight` is present), forward only.
///
///     h0 = token_embedding[ids] + position_embedding[0..<S]
///     h  = h + out_proj(causal_attention(layer_norm1(h)))        per layer
///     h  = h + fc2(act(fc1(layer_norm2(h))))
///     last_hidden_state = final_layer_norm(h_N)
///     pooled = last_hidden_state[eos position]; text_embeds = pooled W_proj^T
///
/// `hidden_states[i]` is the input of layer i (`hidden_states[0]` the embeddings, `hidden_states[N]` the
/// last layer's output before the final norm), as transformers returns with `output_hidden_states=True`.
/// SD 1.x conditions on `last_hidden_state`; SD 2.x pipelines ship a 23-layer config of the 24-layer
/// OpenCLIP model and take its `last_hidden_state`; SDXL takes `hidden_states[-2]` of both encoders and
/// the second one's `text_embeds`.
public struct CLIPTextModel: Sendable {
    public let config: CLIPTextConfig
    let tokenEmbedding: Tensor
    let positionEmbedding: Tensor
    let layers: [EncoderLayer]
    let finalNormWeight: Tensor
    let finalNormBias: Tensor
    /// [projection, hidden] for `CLIPTextModelWithProjection`, else nil.
    public let projection: Tensor?

    public struct Output: Sendable {
        /// All N + 1 hidden states, each [B, S, D].
        public var hiddenStates: [Tensor]
        /// final_layer_norm(hidden_states[N]), [B, S, D].
        public var lastHiddenState: Tensor
        /// last_hidden_state at each sequence's eos position, [B, D].
        public var pooled: Tensor
        /// pooled projected by `text_projection`, [B, P] (nil without a projection).
        public var textEmbeds: Tensor?
    }

    /// Builds the model from named weights: `text_model.`-prefixed as transformers 4 saved every
    /// CLIPTextModel (and 5 still saves CLIPTextModelWithProjection), or unprefixed as transformers 5
    /// saves CLIPTextModel; both load in transformers.
    public init(config: CLIPTextConfig, weights: inout WeightTable) throws(CLIPError) {
        self.config = config
        let d = config.hiddenSize
        let p = weights.has("embeddings.token_embedding.weight") && !weights.has("text_model.embeddings.token_embedding.weight") ? "" : "text_model."
        tokenEmbedding = try weights.tensor(p + "embeddings.token_embedding.weight", [config.vocabularySize, d])
        positionEmbedding = try weights.tensor(p + "embeddings.position_embedding.weight", [config.maxPositions, d])
        weights.ignore(p + "embeddings.position_ids")
        var layers: [EncoderLayer] = []
        for i in 0..<config.layers {
            layers.append(try EncoderLayer(prefix: p + "encoder.layers.\(i).", config: config, weights: &weights))
        }
        self.layers = layers
        finalNormWeight = try weights.tensor(p + "final_layer_norm.weight", [d])
        finalNormBias = try weights.tensor(p + "final_layer_norm.bias", [d])
        projection = weights.has("text_projection.weight")
            ? try weights.tensor("text_projection.weight", [config.projectionSize, d]) : nil
        try weights.checkAllUsed()
    }

    /// Runs the encoder on `ids` ([B][S], every row the same length S <= max_position_embeddings).
    public func forward(_ ids: [[Int32]]) throws(CLIPError) -> Output {
        guard let length = ids.first?.count, length > 0, ids.allSatisfy({ $0.count == length }) else {
            throw CLIPError(.modelBadInput, "token rows must be non-empty and of one length")
        }
        guard length <= config.maxPositions else {
            throw CLIPError(.modelBadInput, "\(length) tokens exceed max_position_embeddings \(config.maxPositions)")
        }
        for row in ids {
            if let bad = row.first(where: { $0 < 0 || Int($0) >= config.vocabularySize }) {
                throw CLIPError(.modelBadInput, "token id \(bad) is outside the embedding's \(config.vocabularySize) rows")
            }
        }
        let b = ids.count, d = config.hiddenSize
        var h = Tensor(uninitializedShape: [b, length, d]) { out in
            tokenEmbedding.data.withUnsafeBufferPointer { te in
                positionEmbedding.data.withUnsafeBufferPointer { pe in
                    for (r, row) in ids.enumerated() {
                        for (s, id) in row.enumerated() {
                            let o = (r * length + s) * d, t = Int(id) * d, q = s * d
                            for i in 0..<d { out[o + i] = te[t + i] + pe[q + i] }
                        }
                    }
                }
            }
        }
        var hiddenStates = [h]
        for layer in layers {
            h = layer.forward(h, config: config)
            hiddenStates.append(h)
        }
        let last = NN.layerNorm(h, weight: finalNormWeight, bias: finalNormBias, eps: config.layerNormEpsilon).output
        var pooledData = [Float](repeating: 0, count: b * d)
        for (r, row) in ids.enumerated() {
            let position: Int
            if config.eosTokenID == 2 {
                position = row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }!
            } else {
                position = row.firstIndex(of: Int32(config.eosTokenID)) ?? 0
            }
            for i in 0..<d { pooledData[r * d + i] = last.data[(r * length + position) * d + i] }
        }
        let pooled = Tensor(shape: [b, d], data: pooledData)
        let embeds = projection.map { NN.linear(pooled, weight: $0, bias: nil) }
        return Output(hiddenStates: hiddenStates, lastHiddenState: last, pooled: pooled, textEmbeds: embeds)
    }
}
