import TensorMath

/// diffusers `ResnetBlock2D` (time_embedding_norm "default"):
/// out = (shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))) + time_emb_proj(silu(temb)))))) / scale.
/// conv1 may be narrower than the block (pruned); norm2 then keeps the base channels per group.
public struct ResnetBlock: Sendable {
    public let norm1: GroupNormLayer
    public let conv1: ConvLayer
    public let timeProj: LinearLayer
    public let norm2: GroupNormLayer
    public let conv2: ConvLayer
    public let shortcut: ConvLayer?
    public let outputScale: Float

    /// What backward needs from the forward.
    struct Saved {
        var x: Tensor
        var stats1: NormStatistics
        var n1: Tensor
        var a1: Tensor
        var h1: Tensor
        var stats2: NormStatistics
        var n2: Tensor
        var a2: Tensor
    }

    /// `groups` and `outChannels` are the base (config) values: conv2's output must be `outChannels`,
    /// conv1's output may be any whole number of groups of outChannels / groups channels.
    init(_ t: inout ParameterTable, _ p: String, inChannels: Int, outChannels: Int, tembChannels: Int,
         groups: Int, eps: Float, outputScale: Float) throws {
        guard inChannels % groups == 0, outChannels % groups == 0 else {
            throw UNetError(.invalidConfig, "norm_num_groups", "\(groups) groups do not divide \(inChannels) or \(outChannels) channels (\(p))")
        }
        norm1 = try GroupNormLayer(&t, p + ".norm1", channels: inChannels, channelsPerGroup: inChannels / groups, eps: eps)
        conv1 = try ConvLayer(&t, p + ".conv1", in: inChannels, out: nil, denseOut: outChannels, kernel: 3, padding: 1)
        let mid = conv1.outChannels
        timeProj = try LinearLayer(&t, p + ".time_emb_proj", in: tembChannels, out: mid)
        norm2 = try GroupNormLayer(&t, p + ".norm2", channels: mid, channelsPerGroup: outChannels / groups, eps: eps)
        conv2 = try ConvLayer(&t, p + ".conv2", in: mid, out: outChannels, kernel: 3, padding: 1)
        shortcut = inChannels != outChannels
            ? try ConvLayer(&t, p + ".conv_shortcut", in: inChannels, out: outChannels, kernel: 1, padding: 0)
            : nil
        self.outputScale = outputScale
    }

    /// `tembAct` is silu(temb), shared by every ResNet of the model.
    func forward(_ x: Tensor, tembAct: Tensor, _ w: Weights, save: Bool) -> (Tensor, Saved?) {
        if !save { return (inferenceForward(x, tembAct: tembAct, w), nil) }
        let (n1, stats1) = norm1.forward(x, w)
        let a1 = NN.silu(n1)
        let c1 = conv1.forward(a1, w)
        let h1 = NN.addChannelBias(c1, timeProj.forward(tembAct, w))
        let (n2, stats2) = norm2.forward(h1, w)
        let a2 = NN.silu(n2)
        var out = conv2.forward(a2, w)
        out.add(shortcut?.forward(x, w) ?? x)
        if outputScale != 1 { out.scale(by: 1 / outputScale) }
        let saved = save ? Saved(x: x, stats1: stats1, n1: n1, a1: a1, h1: h1, stats2: stats2, n2: n2, a2: a2) : nil
        return (out, saved)
    }

    /// The same output with GroupNorm and SiLU fused (nothing kept for a backward).
    private func inferenceForward(_ x: Tensor, tembAct: Tensor, _ w: Weights) -> Tensor {
        let c1 = conv1.forward(norm1.forwardSiLU(x, w), w)
        var out = conv2.forward(norm2.forwardSiLU(NN.addChannelBias(c1, timeProj.forward(tembAct, w)), w), w)
        out.add(shortcut?.forward(x, w) ?? x)
        if outputScale != 1 { out.scale(by: 1 / outputScale) }
        return out
    }

    /// Returns dx; adds d(silu(temb)) into `dTembAct` when parameter gradients are wanted.
    func backward(_ dOut: Tensor, _ s: Saved, tembAct: Tensor, dTembAct: inout Tensor, _ w: Weights,
                  _ sink: inout GradientSink) -> Tensor {
        var d = dOut
        if outputScale != 1 { d.scale(by: 1 / outputScale) }
        var dx = shortcut.map { $0.backward(d, input: s.x, w, &sink)! } ?? d
        let da2 = conv2.backward(d, input: s.a2, w, &sink)!
        let dn2 = NN.siluBackward(da2, input: s.n2)
        let dh1 = norm2.backward(dn2, input: s.h1, stats: s.stats2, w, &sink)
        // The time embedding only feeds parameters, so a frozen model skips its gradient.
        if sink.enabled {
            let dProj = NN.addChannelBiasBackward(dh1, perSample: true)
            dTembAct.add(timeProj.backward(dProj, input: tembAct, w, &sink)!)
        }
        let da1 = conv1.backward(dh1, input: s.a1, w, &sink)!
        let dn1 = NN.siluBackward(da1, input: s.n1)
        dx.add(norm1.backward(dn1, input: s.x, stats: s.stats1, w, &sink))
        return dx
    }
}
