import TensorMath

/// The named layers blocks are built from. A layer holds parameter names and widths read from the
/// weights; the tensors themselves are looked up in the model's `Weights` at run time, so an optimizer
/// can replace them between steps without rebuilding anything.

/// `nn.Linear`, or a 1x1 `nn.Conv2d` applied to tokens (same arithmetic, weight viewed as [out, in]).
public struct LinearLayer: Sendable {
    public let weight: String
    public let bias: String?
    public let inFeatures: Int
    public let outFeatures: Int
    /// The stored weight is [out, in, 1, 1] (a pointwise conv projection).
    public let isPointwiseConv: Bool

    /// `denseOut` and `denseBias` describe the unpruned layer, used only when generating weights.
    init(_ table: inout ParameterTable, _ prefix: String, in inF: Int?, out outF: Int?, denseOut: Int? = nil,
         denseBias: Bool = true, pointwiseConv: Bool = false) throws {
        weight = prefix + ".weight"
        let dense = [denseOut ?? outF ?? 0, inF ?? 0, 1, 1]
        let s = try table.shape(weight, pointwiseConv ? [outF, inF, 1, 1] : [outF, inF], dense: dense)
        outFeatures = s[0]
        inFeatures = s[1]
        isPointwiseConv = pointwiseConv
        if table.has(prefix + ".bias", dense: denseBias) {
            _ = try table.shape(prefix + ".bias", [outFeatures], fill: .zeros)
            bias = prefix + ".bias"
        } else {
            bias = nil
        }
    }

    private func matrix(_ w: Weights) -> Tensor {
        let t = w.at(weight)
        return isPointwiseConv ? t.reshaped([outFeatures, inFeatures]) : t
    }

    func forward(_ x: Tensor, _ w: Weights) -> Tensor {
        NN.linear(x, weight: matrix(w), bias: bias.map(w.at))
    }

    /// Returns dx when `needInput`; adds parameter gradients to `sink`.
    func backward(_ dy: Tensor, input x: Tensor, _ w: Weights, _ sink: inout GradientSink,
                  needInput: Bool = true) -> Tensor? {
        var needs = sink.needs
        if !needInput { needs.remove(.input) }
        if needs.isEmpty { return nil }
        let g = NN.linearBackward(dy, input: x, weight: matrix(w), hasBias: bias != nil, needs: needs)
        if let gw = g.weight {
            sink.add(weight, isPointwiseConv ? gw.reshaped([outFeatures, inFeatures, 1, 1]) : gw)
        }
        if let bias { sink.add(bias, g.bias) }
        return g.input
    }
}

/// `nn.Conv2d` with a square kernel. `padBottomRight` is diffusers' Downsample2D with padding 0, which
/// pads (0, 1, 0, 1) before an unpadded stride-2 conv (TensorMath's `paddingEnd`, no padded copy).
public struct ConvLayer: Sendable {
    public let weight: String
    public let bias: String?
    public let inChannels: Int
    public let outChannels: Int
    public let stride: Int
    public let padding: Int
    public let padBottomRight: Bool
    /// kh * kw.
    public let kernelArea: Int

    init(_ table: inout ParameterTable, _ prefix: String, in inC: Int?, out outC: Int?, denseOut: Int? = nil,
         kernel: Int, stride: Int = 1, padding: Int, padBottomRight: Bool = false) throws {
        weight = prefix + ".weight"
        let s = try table.shape(weight, [outC, inC, kernel, kernel], dense: [denseOut ?? 0, 0, 0, 0])
        outChannels = s[0]
        inChannels = s[1]
        _ = try table.shape(prefix + ".bias", [outChannels], fill: .zeros)
        kernelArea = kernel * kernel
        bias = prefix + ".bias"
        self.stride = stride
        self.padding = padding
        self.padBottomRight = padBottomRight
    }

    /// Padding after each spatial dim: diffusers pads (0, 1, 0, 1) when `downsample_padding` is 0.
    private var paddingEnd: Int { padBottomRight ? 1 : padding }

    func forward(_ x: Tensor, _ w: Weights) -> Tensor {
        NN.conv2d(x, weight: w.at(weight), bias: bias.map(w.at), stride: stride, padding: padding,
                  paddingEnd: paddingEnd)
    }

    func backward(_ dy: Tensor, input x: Tensor, _ w: Weights, _ sink: inout GradientSink,
                  needInput: Bool = true) -> Tensor? {
        var needs = sink.needs
        if !needInput { needs.remove(.input) }
        if needs.isEmpty { return nil }
        let g = NN.conv2dBackward(dy, input: x, weight: w.at(weight), hasBias: bias != nil, stride: stride,
                                  padding: padding, paddingEnd: paddingEnd, needs: needs)
        sink.add(weight, g.weight)
        if let bias { sink.add(bias, g.bias) }
        return g.input
    }
}

/// `nn.GroupNorm` (affine). A pruned layer keeps the base channels per group, so the group count is
/// the layer's channels divided by that.
public struct GroupNormLayer: Sendable {
    public let weight: String
    public let bias: String
    public let channels: Int
    public let groups: Int
    public let eps: Float

    init(_ table: inout ParameterTable, _ prefix: String, channels c: Int?, channelsPerGroup: Int, eps: Float) throws {
        weight = prefix + ".weight"
        bias = prefix + ".bias"
        channels = try table.shape(weight, [c], fill: .ones)[0]
        _ = try table.shape(bias, [channels], fill: .zeros)
        guard channelsPerGroup > 0, channels % channelsPerGroup == 0 else {
            throw UNetError(.badShape, weight, "\(channels) channels are not whole groups of \(channelsPerGroup)")
        }
        groups = channels / channelsPerGroup
        self.eps = eps
    }

    func forward(_ x: Tensor, _ w: Weights) -> (Tensor, NormStatistics) {
        NN.groupNorm(x, groups: groups, weight: w.at(weight), bias: w.at(bias), eps: eps)
    }

    /// silu(norm(x)) in one pass, for forwards that keep nothing for a backward.
    func forwardSiLU(_ x: Tensor, _ w: Weights) -> Tensor {
        NN.groupNormSiLU(x, groups: groups, weight: w.at(weight), bias: w.at(bias), eps: eps)
    }

    func backward(_ dy: Tensor, input x: Tensor, stats: NormStatistics, _ w: Weights,
                  _ sink: inout GradientSink) -> Tensor {
        let g = NN.groupNormBackward(dy, input: x, stats: stats, groups: groups, weight: w.at(weight), needs: sink.needs)
        sink.add(weight, g.weight)
        sink.add(bias, g.bias)
        return g.input!
    }
}

/// `nn.LayerNorm` over the last dimension (affine).
public struct LayerNormLayer: Sendable {
    public let weight: String
    public let bias: String
    public let eps: Float

    init(_ table: inout ParameterTable, _ prefix: String, dim: Int, eps: Float) throws {
        weight = prefix + ".weight"
        bias = prefix + ".bias"
        _ = try table.shape(weight, [dim], fill: .ones)
        _ = try table.shape(bias, [dim], fill: .zeros)
        self.eps = eps
    }

    func forward(_ x: Tensor, _ w: Weights) -> (Tensor, NormStatistics) {
        NN.layerNorm(x, weight: w.at(weight), bias: w.at(bias), eps: eps)
    }

    func backward(_ dy: Tensor, input x: Tensor, stats: NormStatistics, _ w: Weights,
                  _ sink: inout GradientSink) -> Tensor {
        let g = NN.layerNormBackward(dy, input: x, stats: stats, weight: w.at(weight), needs: sink.needs)
        sink.add(weight, g.weight)
        sink.add(bias, g.bias)
        return g.input!
    }
}
