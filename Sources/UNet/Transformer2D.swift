import TensorMath

/// diffusers `BasicTransformerBlock` (layer_norm, GEGLU feed-forward, no dropout):
/// h += attn1(norm1(h)); h += attn2(norm2(h), context); h += ff(norm3(h)).
/// The GEGLU inner width is read from ff.net.0.proj (pruned checkpoints narrow it).
public struct TransformerBlock: Sendable {
    public let norm1: LayerNormLayer
    public let attn1: AttentionLayer
    public let norm2: LayerNormLayer
    public let attn2: AttentionLayer
    public let norm3: LayerNormLayer
    public let ffIn: LinearLayer
    public let ffOut: LinearLayer

    struct Saved {
        var x0: Tensor, s1: NormStatistics, n1: Tensor, a1: AttentionLayer.Saved
        var x1: Tensor, s2: NormStatistics, n2: Tensor, a2: AttentionLayer.Saved
        var x2: Tensor, s3: NormStatistics, n3: Tensor, p: Tensor, g: Tensor
    }

    init(_ t: inout ParameterTable, _ p: String, dim: Int, contextDim: Int, headDim: Int) throws {
        norm1 = try LayerNormLayer(&t, p + ".norm1", dim: dim, eps: 1e-5)
        attn1 = try AttentionLayer(&t, p + ".attn1", queryDim: dim, contextDim: nil, headDim: headDim,
                                   projectionBias: false)
        norm2 = try LayerNormLayer(&t, p + ".norm2", dim: dim, eps: 1e-5)
        attn2 = try AttentionLayer(&t, p + ".attn2", queryDim: dim, contextDim: contextDim, headDim: headDim,
                                   projectionBias: false)
        norm3 = try LayerNormLayer(&t, p + ".norm3", dim: dim, eps: 1e-5)
        ffIn = try LinearLayer(&t, p + ".ff.net.0.proj", in: dim, out: nil, denseOut: dim * 8)
        guard ffIn.outFeatures % 2 == 0 else {
            throw UNetError(.badShape, ffIn.weight, "GEGLU projection has an odd width \(ffIn.outFeatures)")
        }
        ffOut = try LinearLayer(&t, p + ".ff.net.2", in: ffIn.outFeatures / 2, out: dim)
    }

    func forward(_ x0: Tensor, context: Tensor, _ w: Weights, save: Bool) -> (Tensor, Saved?) {
        let (n1, s1) = norm1.forward(x0, w)
        // Residual adds go into the sublayer outputs, which are fresh and unshared.
        var (x1, sa1) = attn1.forward(n1, context: nil, w, save: save)
        x1.add(x0)
        let (n2, s2) = norm2.forward(x1, w)
        var (x2, sa2) = attn2.forward(n2, context: context, w, save: save)
        x2.add(x1)
        let (n3, s3) = norm3.forward(x2, w)
        let p = ffIn.forward(n3, w)
        let g = NN.geglu(p)
        var out = ffOut.forward(g, w)
        out.add(x2)
        guard save else { return (out, nil) }
        return (out, Saved(x0: x0, s1: s1, n1: n1, a1: sa1!, x1: x1, s2: s2, n2: n2, a2: sa2!,
                           x2: x2, s3: s3, n3: n3, p: p, g: g))
    }

    /// Returns dx; adds the context gradient into `dContext` when it is non-nil.
    func backward(_ dOut: Tensor, _ s: Saved, _ w: Weights, _ sink: inout GradientSink,
                  dContext: inout Tensor?) -> Tensor {
        var d = dOut
        let dg = ffOut.backward(d, input: s.g, w, &sink)!
        let dp = NN.gegluBackward(dg, input: s.p)
        let dn3 = ffIn.backward(dp, input: s.n3, w, &sink)!
        d.add(norm3.backward(dn3, input: s.x2, stats: s.s3, w, &sink))
        let (dn2, dc) = attn2.backward(d, s.a2, w, &sink, needContext: dContext != nil)
        if let dc { dContext!.add(dc) }
        d.add(norm2.backward(dn2, input: s.x1, stats: s.s2, w, &sink))
        let (dn1, _) = attn1.backward(d, s.a1, w, &sink, needContext: false)
        d.add(norm1.backward(dn1, input: s.x0, stats: s.s1, w, &sink))
        return d
    }
}

/// diffusers `Transformer2DModel` with continuous input: GroupNorm (eps 1e-6), proj_in (1x1 conv or
/// linear), transformer blocks over the H*W tokens, proj_out, residual add.
public struct Transformer2D: Sendable {
    public let norm: GroupNormLayer
    public let projIn: LinearLayer
    public let blocks: [TransformerBlock]
    public let projOut: LinearLayer

    struct Saved {
        var x: Tensor
        var stats: NormStatistics
        var tokensIn: Tensor
        var blocks: [TransformerBlock.Saved]
        var tokensOut: Tensor
    }

    init(_ t: inout ParameterTable, _ p: String, channels: Int, headCount: Int, layers: Int, contextDim: Int,
         groups: Int, linearProjection: Bool) throws {
        guard channels % groups == 0 else {
            throw UNetError(.invalidConfig, "norm_num_groups", "\(groups) groups do not divide \(channels) channels (\(p))")
        }
        norm = try GroupNormLayer(&t, p + ".norm", channels: channels, channelsPerGroup: channels / groups, eps: 1e-6)
        projIn = try LinearLayer(&t, p + ".proj_in", in: channels, out: channels, pointwiseConv: !linearProjection)
        blocks = try (0..<layers).map { i in
            try TransformerBlock(&t, p + ".transformer_blocks.\(i)", dim: channels, contextDim: contextDim,
                                 headDim: channels / headCount)
        }
        projOut = try LinearLayer(&t, p + ".proj_out", in: channels, out: channels, pointwiseConv: !linearProjection)
    }

    func forward(_ x: Tensor, context: Tensor, _ w: Weights, save: Bool) -> (Tensor, Saved?) {
        let (n, stats) = norm.forward(x, w)
        let tokensIn = n.toTokens()
        var h = projIn.forward(tokensIn, w)
        var saves: [TransformerBlock.Saved] = []
        for b in blocks {
            let (y, s) = b.forward(h, context: context, w, save: save)
            h = y
            if let s { saves.append(s) }
        }
        var out = projOut.forward(h, w).fromTokens(height: x.shape[2], width: x.shape[3])
        out.add(x)
        return (out, save ? Saved(x: x, stats: stats, tokensIn: tokensIn, blocks: saves, tokensOut: h) : nil)
    }

    func backward(_ dOut: Tensor, _ s: Saved, _ w: Weights, _ sink: inout GradientSink,
                  dContext: inout Tensor?) -> Tensor {
        var dh = projOut.backward(dOut.toTokens(), input: s.tokensOut, w, &sink)!
        for (b, saved) in zip(blocks, s.blocks).reversed() {
            dh = b.backward(dh, saved, w, &sink, dContext: &dContext)
        }
        let dTokens = projIn.backward(dh, input: s.tokensIn, w, &sink)!
        let dn = dTokens.fromTokens(height: s.x.shape[2], width: s.x.shape[3])
        var dx = dOut
        dx.add(norm.backward(dn, input: s.x, stats: s.stats, w, &sink))
        return dx
    }
}
