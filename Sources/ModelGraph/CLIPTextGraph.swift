import CLIP

/// A transformers CLIPTextModel as a graph, from its `CLIPTextConfig` (the engine's description: the text
/// encoder is dense, so the config fixes every shape, and each tensor is checked against it).
///
/// `input_ids` [batch, sequence] int32 (what OnnxStableDiffusionPipeline feeds) -> `last_hidden_state`
/// [batch, sequence, hidden] and `pooler_output` [batch, hidden]: the final-norm state at the end-of-text
/// token (transformers' rule: the highest id when `eos_token_id` is 2, legacy configs; else the first
/// `eos_token_id`).
public enum CLIPTextGraph {
    /// With fixed shapes, the sequence is `max_position_embeddings` long (the pipeline pads to it).
    public static func build(config c: CLIPTextConfig, shapes: [String: [Int]], file: String, io: IOShape = .dynamic) throws -> Graph {
        var b = GraphBuilder(shapes: shapes, file: file)
        let p = shapes["embeddings.token_embedding.weight"] != nil && shapes["text_model.embeddings.token_embedding.weight"] == nil
            ? "" : "text_model."
        let d = c.hiddenSize, f = c.intermediateSize, eps = c.layerNormEpsilon
        let ids = "input_ids"
        let scope = "embeddings"
        let tokens = b.op("Gather", [try b.weight(p + "embeddings.token_embedding.weight", expected: [c.vocabularySize, d]), ids],
                          scope: scope, [("axis", .int(0))])
        let length = b.op("Shape", [ids], scope: scope, [("start", .int(1)), ("end", .int(2))])
        let positions = b.op("Slice", [try b.weight(p + "embeddings.position_embedding.weight", expected: [c.maxPositions, d]),
                                       b.int64s([0]), length, b.int64s([0])], scope: scope)
        var h = b.op("Add", [tokens, positions], scope: scope)

        // The causal mask: -inf above the diagonal, cut to the sequence length.
        let n = c.maxPositions
        var maskValues = [Float](repeating: 0, count: n * n)
        for i in 0..<n { for j in (i + 1)..<n { maskValues[i * n + j] = -.infinity } }
        let fullMask = b.floats(maskValues, shape: [n, n], name: "causal_mask")
        let mask = b.op("Slice", [fullMask, b.int64s([0, 0]), b.op("Concat", [length, length], scope: "mask", [("axis", .int(0))]),
                                  b.int64s([0, 1])], scope: "mask")

        for i in 0..<c.layers {
            let l = p + "encoder.layers.\(i)."
            let s = "encoder.layers.\(i)"
            let n1 = try b.layerNorm(h, weight: l + "layer_norm1.weight", bias: l + "layer_norm1.bias", dim: d, eps: eps, scope: s + ".layer_norm1")
            let a = l + "self_attn."
            let q = try b.linear(n1, weight: a + "q_proj.weight", bias: a + "q_proj.bias", in: d, out: d, scope: s + ".self_attn.q_proj")
            let k = try b.linear(n1, weight: a + "k_proj.weight", bias: a + "k_proj.bias", in: d, out: d, scope: s + ".self_attn.k_proj")
            let v = try b.linear(n1, weight: a + "v_proj.weight", bias: a + "v_proj.bias", in: d, out: d, scope: s + ".self_attn.v_proj")
            let o = b.attention(q: q, k: k, v: v, heads: c.heads, headDim: d / c.heads, mask: mask, scope: s + ".self_attn")
            let attended = try b.linear(o, weight: a + "out_proj.weight", bias: a + "out_proj.bias", in: d, out: d, scope: s + ".self_attn.out_proj")
            h = b.op("Add", [attended, h], scope: s)
            let n2 = try b.layerNorm(h, weight: l + "layer_norm2.weight", bias: l + "layer_norm2.bias", dim: d, eps: eps, scope: s + ".layer_norm2")
            var m = try b.linear(n2, weight: l + "mlp.fc1.weight", bias: l + "mlp.fc1.bias", in: d, out: f, scope: s + ".mlp.fc1")
            switch c.activation {
            case .quickGELU:
                // transformers' QuickGELUActivation: x * sigmoid(1.702 x).
                m = b.op("Mul", [m, b.op("Sigmoid", [b.op("Mul", [m, b.scalar(1.702)], scope: s + ".mlp")], scope: s + ".mlp")], scope: s + ".mlp")
            case .gelu:
                m = b.gelu(m, scope: s + ".mlp")
            }
            let out = try b.linear(m, weight: l + "mlp.fc2.weight", bias: l + "mlp.fc2.bias", in: f, out: d, scope: s + ".mlp.fc2")
            h = b.op("Add", [out, h], scope: s)
        }
        let last = try b.layerNorm(h, weight: p + "final_layer_norm.weight", bias: p + "final_layer_norm.bias", dim: d, eps: eps,
                                   scope: "final_layer_norm")

        // Pooling: the row of the end-of-text token, gathered as [batch, 1, hidden].
        let pool = "pooler"
        let key = c.eosTokenID == 2
            ? ids
            : b.op("Cast", [b.op("Equal", [ids, b.int32Scalar(Int32(c.eosTokenID))], scope: pool)], scope: pool, [("to", .int(6))])
        let position = b.op("ArgMax", [key], scope: pool, [("axis", .int(1)), ("keepdims", .int(1))])
        let index = b.op("Unsqueeze", [position, b.int64s([2])], scope: pool)
        let batch = b.op("Shape", [ids], scope: pool, [("start", .int(0)), ("end", .int(1))])
        let spread = b.op("Expand", [index, b.op("Concat", [batch, b.int64s([1, d])], scope: pool, [("axis", .int(0))])], scope: pool)
        let row = b.op("GatherElements", [last, spread], scope: pool, [("axis", .int(1))])
        let pooled = b.op("Squeeze", [row, b.int64s([1])], scope: pool)
        b.rename(output: last, to: "last_hidden_state")
        b.rename(output: pooled, to: "pooler_output")

        let batchDim = io.batch
        let sequence: Dimension = io.fixed == nil ? .symbolic("sequence") : .fixed(c.maxPositions)
        return b.graph(name: "text_encoder",
                       inputs: [ValueInfo(name: ids, type: .int32, shape: [batchDim, sequence])],
                       outputs: [ValueInfo(name: "last_hidden_state", type: .float32, shape: [batchDim, sequence, .fixed(d)]),
                                 ValueInfo(name: "pooler_output", type: .float32, shape: [batchDim, .fixed(d)])])
    }
}
