import Foundation
import TensorMath

/// One pre-norm transformer block of CLIP's text encoder (transformers' `CLIPEncoderLayer`).
struct EncoderLayer: Sendable {
    let norm1Weight, norm1Bias, norm2Weight, norm2Bias: Tensor
    let qWeight, qBias, kWeight, kBias, vWeight, vBias, outWeight, outBias: Tensor
    let fc1Weight, fc1Bias, fc2Weight, fc2Bias: Tensor

    init(prefix: String, config: CLIPTextConfig, weights: inout WeightTable) throws(CLIPError) {
        let d = config.hiddenSize, f = config.intermediateSize
        norm1Weight = try weights.tensor(prefix + "layer_norm1.weight", [d])
        norm1Bias = try weights.tensor(prefix + "layer_norm1.bias", [d])
        norm2Weight = try weights.tensor(prefix + "layer_norm2.weight", [d])
        norm2Bias = try weights.tensor(prefix + "layer_norm2.bias", [d])
        let a = prefix + "self_attn."
        qWeight = try weights.tensor(a + "q_proj.weight", [d, d])
        qBias = try weights.tensor(a + "q_proj.bias", [d])
        kWeight = try weights.tensor(a + "k_proj.weight", [d, d])
        kBias = try weights.tensor(a + "k_proj.bias", [d])
        vWeight = try weights.tensor(a + "v_proj.weight", [d, d])
        vBias = try weights.tensor(a + "v_proj.bias", [d])
        outWeight = try weights.tensor(a + "out_proj.weight", [d, d])
        outBias = try weights.tensor(a + "out_proj.bias", [d])
        fc1Weight = try weights.tensor(prefix + "mlp.fc1.weight", [f, d])
        fc1Bias = try weights.tensor(prefix + "mlp.fc1.bias", [f])
        fc2Weight = try weights.tensor(prefix + "mlp.fc2.weight", [d, f])
        fc2Bias = try weights.tensor(prefix + "mlp.fc2.bias", [d])
    }

    /// x: [B, S, D] -> [B, S, D].
    func forward(_ x: Tensor, config: CLIPTextConfig) -> Tensor {
        let eps = config.layerNormEpsilon
        let n1 = NN.layerNorm(x, weight: norm1Weight, bias: norm1Bias, eps: eps).output
        let q = NN.linear(n1, weight: qWeight, bias: qBias)
        let k = NN.linear(n1, weight: kWeight, bias: kBias)
        let v = NN.linear(n1, weight: vWeight, bias: vBias)
        let attended = CausalAttention.forward(q: q, k: k, v: v, heads: config.heads)
        var h = NN.linear(attended, weight: outWeight, bias: outBias)
        add(&h, x)
        let n2 = NN.layerNorm(h, weight: norm2Weight, bias: norm2Bias, eps: eps).output
        var m = NN.linear(n2, weight: fc1Weight, bias: fc1Bias)
        switch config.activation {
        case .quickGELU:
            // x * sigmoid(1.702 x), transformers' QuickGELUActivation.
            m.data.withUnsafeMutableBufferPointer { p in
                for i in p.indices { p[i] = p[i] / (1 + exp(-1.702 * p[i])) }
            }
        case .gelu:
            m = NN.gelu(m)
        }
        var out = NN.linear(m, weight: fc2Weight, bias: fc2Bias)
        add(&out, h)
        return out
    }

    private func add(_ y: inout Tensor, _ x: Tensor) {
        y.data.withUnsafeMutableBufferPointer { py in
            x.data.withUnsafeBufferPointer { px in
                for i in py.indices { py[i] += px[i] }
            }
        }
    }
}

/// Multi-head self-attention where position i sees positions 0...i (CLIP's causal mask), scale
/// 1/sqrt(head dim). q, k, v: [B, S, H*d] -> [B, S, H*d]. Sequences are CLIP's 77 tokens, so the
/// scores of one head (S x S) are computed directly.
enum CausalAttention {
    static func forward(q: Tensor, k: Tensor, v: Tensor, heads: Int) -> Tensor {
        let b = q.shape[0], s = q.shape[1], width = q.shape[2], hd = width / heads
        let scale = 1 / Float(hd).squareRoot()
        return Tensor(uninitializedShape: [b, s, width]) { out in
            q.data.withUnsafeBufferPointer { pq in
            k.data.withUnsafeBufferPointer { pk in
            v.data.withUnsafeBufferPointer { pv in
                var scores = [Float](repeating: 0, count: s)
                for batch in 0..<b {
                    for head in 0..<heads {
                        let base = batch * s * width + head * hd
                        for i in 0..<s {
                            let qi = base + i * width
                            var maxScore = -Float.infinity
                            for j in 0...i {
                                let kj = base + j * width
                                var dot: Float = 0
                                for c in 0..<hd { dot += pq[qi + c] * pk[kj + c] }
                                scores[j] = dot * scale
                                maxScore = max(maxScore, scores[j])
                            }
                            var total: Float = 0
                            for j in 0...i {
                                scores[j] = exp(scores[j] - maxScore)
                                total += scores[j]
                            }
                            let o = qi
                            for c in 0..<hd { out[o + c] = 0 }
                            for j in 0...i {
                                let w = scores[j] / total, vj = base + j * width
                                for c in 0..<hd { out[o + c] += w * pv[vj + c] }
                            }
                        }
                    }
                }
            }
            }
            }
        }
    }
}
