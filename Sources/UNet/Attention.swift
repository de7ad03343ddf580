import TensorMath

/// diffusers `Attention` as used inside `BasicTransformerBlock`: to_q/to_k/to_v projections (bias
/// optional), multi-head scaled dot-product attention, to_out.0. Head size is the base config's; the
/// head count is read from to_q's rows, so pruned heads just make the projections narrower.
/// `upcast_attention` only matters in half precision; this engine computes in float32 throughout.
public struct AttentionLayer: Sendable {
    public let toQ: LinearLayer
    public let toK: LinearLayer
    public let toV: LinearLayer
    public let toOut: LinearLayer
    public let heads: Int

    struct Saved {
        var x: Tensor
        var context: Tensor?
        var q: Tensor
        var k: Tensor
        var v: Tensor
        var o: Tensor
        var stats: AttentionStatistics
    }

    /// `projectionBias` says whether to_q/to_k/to_v of a dense model have biases (generation only).
    init(_ t: inout ParameterTable, _ p: String, queryDim: Int, contextDim: Int?, headDim: Int,
         projectionBias: Bool) throws {
        toQ = try LinearLayer(&t, p + ".to_q", in: queryDim, out: nil, denseOut: queryDim, denseBias: projectionBias)
        let inner = toQ.outFeatures
        guard headDim > 0, inner % headDim == 0, inner > 0 else {
            throw UNetError(.badShape, toQ.weight, "\(inner) rows are not whole heads of size \(headDim)")
        }
        heads = inner / headDim
        toK = try LinearLayer(&t, p + ".to_k", in: contextDim ?? queryDim, out: inner, denseBias: projectionBias)
        toV = try LinearLayer(&t, p + ".to_v", in: contextDim ?? queryDim, out: inner, denseBias: projectionBias)
        toOut = try LinearLayer(&t, p + ".to_out.0", in: inner, out: queryDim)
    }

    /// x: [B, N, queryDim]; context: [B, M, contextDim] or nil for self-attention.
    func forward(_ x: Tensor, context: Tensor?, _ w: Weights, save: Bool) -> (Tensor, Saved?) {
        let c = context ?? x
        let q = toQ.forward(x, w), k = toK.forward(c, w), v = toV.forward(c, w)
        let (o, stats) = NN.attention(q: q, k: k, v: v, heads: heads)
        let out = toOut.forward(o, w)
        return (out, save ? Saved(x: x, context: context, q: q, k: k, v: v, o: o, stats: stats) : nil)
    }

    /// Returns (dx, dcontext); for self-attention dcontext is nil and the key/value paths add into dx.
    func backward(_ dOut: Tensor, _ s: Saved, _ w: Weights, _ sink: inout GradientSink,
                  needContext: Bool) -> (Tensor, Tensor?) {
        let dO = toOut.backward(dOut, input: s.o, w, &sink)!
        let (dq, dk, dv) = NN.attentionBackward(dO, q: s.q, k: s.k, v: s.v, heads: heads, stats: s.stats)
        var dx = toQ.backward(dq, input: s.x, w, &sink)!
        let c = s.context ?? s.x
        let wantC = s.context == nil || needContext
        let dck = toK.backward(dk, input: c, w, &sink, needInput: wantC)
        let dcv = toV.backward(dv, input: c, w, &sink, needInput: wantC)
        guard var dc = dck, let dcv else { return (dx, nil) }
        dc.add(dcv)
        if s.context == nil {
            dx.add(dc)
            return (dx, nil)
        }
        return (dx, dc)
    }
}

/// diffusers `Attention` in its spatial form (UNet2DModel's AttnDownBlock2D / AttnUpBlock2D /
/// UNetMidBlock2D): group_norm on the image, self-attention over the H*W tokens with biased
/// projections, then residual add and division by `rescale_output_factor`.
public struct SpatialAttention: Sendable {
    public let norm: GroupNormLayer
    public let attention: AttentionLayer
    public let rescale: Float

    struct Saved {
        var x: Tensor
        var stats: NormStatistics
        var attention: AttentionLayer.Saved
    }

    init(_ t: inout ParameterTable, _ p: String, channels: Int, headDim: Int?, groups: Int, eps: Float,
         rescale: Float) throws {
        guard channels % groups == 0 else {
            throw UNetError(.invalidConfig, "norm_num_groups", "\(groups) groups do not divide \(channels) channels (\(p))")
        }
        norm = try GroupNormLayer(&t, p + ".group_norm", channels: channels, channelsPerGroup: channels / groups, eps: eps)
        attention = try AttentionLayer(&t, p, queryDim: channels, contextDim: nil, headDim: headDim ?? channels,
                                       projectionBias: true)
        self.rescale = rescale
    }

    func forward(_ x: Tensor, _ w: Weights, save: Bool) -> (Tensor, Saved?) {
        let (n, stats) = norm.forward(x, w)
        let (a, saved) = attention.forward(n.toTokens(), context: nil, w, save: save)
        var out = a.fromTokens(height: x.shape[2], width: x.shape[3])
        out.add(x)
        if rescale != 1 { out.scale(by: 1 / rescale) }
        return (out, saved.map { Saved(x: x, stats: stats, attention: $0) })
    }

    func backward(_ dOut: Tensor, _ s: Saved, _ w: Weights, _ sink: inout GradientSink) -> Tensor {
        var d = dOut
        if rescale != 1 { d.scale(by: 1 / rescale) }
        let (dTokens, _) = attention.backward(d.toTokens(), s.attention, w, &sink, needContext: false)
        let dn = dTokens.fromTokens(height: s.x.shape[2], width: s.x.shape[3])
        d.add(norm.backward(dn, input: s.x, stats: s.stats, w, &sink))
        return d
    }
}
