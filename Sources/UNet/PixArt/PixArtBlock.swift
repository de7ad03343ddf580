import TensorMath

/// diffusers `Attention` as PixArt's cross-attention uses it: queries from the image tokens, keys and
/// values from the (projected) caption, and the caption mask as an additive bias on the scores, as
/// diffusers turns `encoder_attention_mask` into (1 - mask) * -10000. Heads are read from to_q's rows
/// (`AttentionLayer`), so pruned heads load.
struct MaskedCrossAttention: Sendable {
    let layer: AttentionLayer

    struct Saved {
        var x: Tensor
        var context: Tensor
        /// Queries and keys as the kernel saw them: with the bias column appended when a mask applies.
        var q: Tensor
        var k: Tensor
        var v: Tensor
        var o: Tensor
        var stats: AttentionStatistics
        var masked: Bool
    }

    /// x: [B, N, D]; context: [B, T, Dc]; keyBias: [B * T] additive biases, nil when every key is kept.
    func forward(_ x: Tensor, context: Tensor, keyBias: [Float]?, _ w: Weights, save: Bool) -> (Tensor, Saved?) {
        let heads = layer.heads
        var q = layer.toQ.forward(x, w), k = layer.toK.forward(context, w)
        let v = layer.toV.forward(context, w)
        let headDim = q.shape[2] / heads
        let scale = 1 / Float(headDim).squareRoot()
        if let keyBias {
            let t = context.shape[1]
            q = PixArtOps.appendingHeadColumn(q, heads: heads) { _, _ in 1 }
            k = PixArtOps.appendingHeadColumn(k, heads: heads) { item, key in keyBias[item * t + key] / scale }
        }
        let (o, stats) = NN.attention(q: q, k: k, v: v, heads: heads, scale: scale)
        let out = layer.toOut.forward(o, w)
        guard save else { return (out, nil) }
        return (out, Saved(x: x, context: context, q: q, k: k, v: v, o: o, stats: stats, masked: keyBias != nil))
    }

    /// Returns (dx, dcontext); dcontext only when `needContext`.
    func backward(_ dOut: Tensor, _ s: Saved, _ w: Weights, _ sink: inout GradientSink,
                  needContext: Bool) -> (Tensor, Tensor?) {
        let heads = layer.heads
        let dO = layer.toOut.backward(dOut, input: s.o, w, &sink)!
        let headDim = s.q.shape[2] / heads - (s.masked ? 1 : 0)
        var (dq, dk, dv) = NN.attentionBackward(dO, q: s.q, k: s.k, v: s.v, heads: heads, stats: s.stats,
                                                scale: 1 / Float(headDim).squareRoot())
        if s.masked {
            dq = PixArtOps.droppingHeadColumn(dq, heads: heads)
            dk = PixArtOps.droppingHeadColumn(dk, heads: heads)
        }
        let dx = layer.toQ.backward(dq, input: s.x, w, &sink)!
        let dck = layer.toK.backward(dk, input: s.context, w, &sink, needInput: needContext)
        let dcv = layer.toV.backward(dv, input: s.context, w, &sink, needInput: needContext)
        guard var dc = dck, let dcv else { return (dx, nil) }
        dc.add(dcv)
        return (dx, dc)
    }
}

/// diffusers `BasicTransformerBlock` with `norm_type="ada_norm_single"` (PixArt): the six modulation
/// vectors are the block's `scale_shift_table` [6, D] plus the shared timestep projection [B, 6, D]:
/// shift/scale/gate for self-attention, then for the feed-forward.
///
///     h1 = x  + gate_msa * attn1(LN(x) * (1 + scale_msa) + shift_msa)
///     h2 = h1 + attn2(h1, caption, mask)                 (no norm before cross-attention, as PixArt)
///     out = h2 + gate_mlp * ff(LN(h2) * (1 + scale_mlp) + shift_mlp),  ff = Linear, GELU-tanh, Linear
///
/// LNs have no affine parameters (eps from the config). Heads per attention come from to_q's rows and
/// the FFN width from ff.net.0.proj's, so width-pruned blocks load.
public struct PixArtBlock: Sendable {
    public let attn1: AttentionLayer
    public let attn2: AttentionLayer
    public let ffIn: LinearLayer
    public let ffOut: LinearLayer
    /// `transformer_blocks.i.scale_shift_table`, [6, D].
    public let scaleShiftTable: String
    let eps: Float

    struct Saved {
        var x0: Tensor, s1: NormStatistics, n1: Tensor, a1: AttentionLayer.Saved, y1: Tensor
        var x1: Tensor, a2: MaskedCrossAttention.Saved
        var x2: Tensor, s2: NormStatistics, n2: Tensor, m2: Tensor, p: Tensor, g: Tensor, f: Tensor
    }

    init(_ t: inout ParameterTable, _ p: String, dim: Int, contextDim: Int, headDim: Int, eps: Float) throws {
        attn1 = try AttentionLayer(&t, p + ".attn1", queryDim: dim, contextDim: nil, headDim: headDim, projectionBias: true)
        attn2 = try AttentionLayer(&t, p + ".attn2", queryDim: dim, contextDim: contextDim, headDim: headDim, projectionBias: true)
        ffIn = try LinearLayer(&t, p + ".ff.net.0.proj", in: dim, out: nil, denseOut: dim * 4)
        ffOut = try LinearLayer(&t, p + ".ff.net.2", in: ffIn.outFeatures, out: dim)
        scaleShiftTable = p + ".scale_shift_table"
        _ = try t.shape(scaleShiftTable, [6, dim])
        self.eps = eps
    }

    /// The six modulation rows of this block, [B, 6, D]: its table plus the timestep projection `t6`.
    func modulation(_ t6: Tensor, _ w: Weights) -> Tensor {
        let table = w.at(scaleShiftTable)
        let b = t6.shape[0], d = table.shape[1]
        var m = t6.reshaped([b, 6, d])
        m.data.withUnsafeMutableBufferPointer { pm in
            table.data.withUnsafeBufferPointer { pt in
                for item in 0..<b { for i in 0..<(6 * d) { pm[item * 6 * d + i] += pt[i] } }
            }
        }
        return m
    }

    func forward(_ x0: Tensor, context: Tensor, keyBias: [Float]?, modulation mod: Tensor, _ w: Weights,
                 save: Bool) -> (Tensor, Saved?) {
        let (n1, s1) = NN.layerNorm(x0, weight: nil, bias: nil, eps: eps)
        let m1 = PixArtOps.modulate(n1, mod, shiftRow: 0, scaleRow: 1)
        let (y1, sa1) = attn1.forward(m1, context: nil, w, save: save)
        let x1 = PixArtOps.gatedAdd(x0, y1, mod, row: 2)
        var (x2, sa2) = MaskedCrossAttention(layer: attn2).forward(x1, context: context, keyBias: keyBias, w, save: save)
        x2.add(x1)
        let (n2, s2) = NN.layerNorm(x2, weight: nil, bias: nil, eps: eps)
        let m2 = PixArtOps.modulate(n2, mod, shiftRow: 3, scaleRow: 4)
        let p = ffIn.forward(m2, w)
        let g = PixArtOps.geluTanh(p)
        let f = ffOut.forward(g, w)
        let out = PixArtOps.gatedAdd(x2, f, mod, row: 5)
        guard save else { return (out, nil) }
        return (out, Saved(x0: x0, s1: s1, n1: n1, a1: sa1!, y1: y1, x1: x1, a2: sa2!,
                           x2: x2, s2: s2, n2: n2, m2: m2, p: p, g: g, f: f))
    }

    /// Returns dx; `dModulation` receives the gradient of the [B, 6, D] modulation rows, and the caption
    /// gradient is added into `dContext` when that is non-nil.
    func backward(_ dOut: Tensor, _ s: Saved, modulation mod: Tensor, _ w: Weights, _ sink: inout GradientSink,
                  dModulation: inout Tensor, dContext: inout Tensor?) -> Tensor {
        var d = dOut
        let df = PixArtOps.gatedAddBackward(dOut, y: s.f, mod, row: 5, dTable: &dModulation)
        let dg = ffOut.backward(df, input: s.g, w, &sink)!
        let dp = PixArtOps.geluTanhBackward(dg, input: s.p)
        let dm2 = ffIn.backward(dp, input: s.m2, w, &sink)!
        let dn2 = PixArtOps.modulateBackward(dm2, input: s.n2, mod, shiftRow: 3, scaleRow: 4, dTable: &dModulation)
        d.add(NN.layerNormBackward(dn2, input: s.x2, stats: s.s2, weight: nil, needs: .input).input!)
        let (dx1, dc) = MaskedCrossAttention(layer: attn2).backward(d, s.a2, w, &sink, needContext: dContext != nil)
        if let dc { dContext!.add(dc) }
        d.add(dx1)
        let dy1 = PixArtOps.gatedAddBackward(d, y: s.y1, mod, row: 2, dTable: &dModulation)
        let (dm1, _) = attn1.backward(dy1, s.a1, w, &sink, needContext: false)
        let dn1 = PixArtOps.modulateBackward(dm1, input: s.n1, mod, shiftRow: 0, scaleRow: 1, dTable: &dModulation)
        d.add(NN.layerNormBackward(dn1, input: s.x0, stats: s.s1, weight: nil, needs: .input).input!)
        return d
    }
}
