import TensorMath

/// The attention that follows a ResNet inside a block: cross-attention transformer (conditional
/// family) or spatial self-attention (unconditional family).
public enum BlockAttention: Sendable {
    case transformer(Transformer2D)
    case spatial(SpatialAttention)

    enum Saved {
        case transformer(Transformer2D.Saved)
        case spatial(SpatialAttention.Saved)
    }

    func forward(_ x: Tensor, context: Tensor?, _ w: Weights, save: Bool) -> (Tensor, Saved?) {
        switch self {
        case .transformer(let t):
            let (y, s) = t.forward(x, context: context!, w, save: save)
            return (y, s.map(Saved.transformer))
        case .spatial(let a):
            let (y, s) = a.forward(x, w, save: save)
            return (y, s.map(Saved.spatial))
        }
    }

    func backward(_ d: Tensor, _ s: Saved, _ w: Weights, _ sink: inout GradientSink, dContext: inout Tensor?) -> Tensor {
        switch (self, s) {
        case (.transformer(let t), .transformer(let saved)):
            return t.backward(d, saved, w, &sink, dContext: &dContext)
        case (.spatial(let a), .spatial(let saved)):
            return a.backward(d, saved, w, &sink)
        default:
            preconditionFailure("attention state does not match its layer")
        }
    }
}

/// One ResNet, optionally followed by its attention: the repeating unit of every block.
public struct BlockLayer: Sendable {
    public let resnet: ResnetBlock
    public let attention: BlockAttention?

    struct Saved {
        var resnet: ResnetBlock.Saved
        var attention: BlockAttention.Saved?
    }

    func forward(_ x: Tensor, tembAct: Tensor, context: Tensor?, _ w: Weights, save: Bool) -> (Tensor, Saved?) {
        let (h, rs) = resnet.forward(x, tembAct: tembAct, w, save: save)
        guard let attention else { return (h, rs.map { Saved(resnet: $0, attention: nil) }) }
        let (y, asv) = attention.forward(h, context: context, w, save: save)
        return (y, rs.map { Saved(resnet: $0, attention: asv) })
    }

    func backward(_ d: Tensor, _ s: Saved, tembAct: Tensor, dTembAct: inout Tensor, dContext: inout Tensor?,
                  _ w: Weights, _ sink: inout GradientSink) -> Tensor {
        var dh = d
        if let attention, let asv = s.attention {
            dh = attention.backward(dh, asv, w, &sink, dContext: &dContext)
        }
        return resnet.backward(dh, s.resnet, tembAct: tembAct, dTembAct: &dTembAct, w, &sink)
    }
}

/// `Downsample2D` (a stride-2 3x3 conv) and `Upsample2D` (nearest 2x, then a 3x3 conv).
public struct Resample: Sendable {
    public let conv: ConvLayer
    public let up: Bool

    func forward(_ x: Tensor, _ w: Weights) -> (Tensor, Tensor) {
        let input = up ? NN.upsampleNearest2x(x) : x
        return (conv.forward(input, w), input)
    }

    func backward(_ d: Tensor, convInput: Tensor, _ w: Weights, _ sink: inout GradientSink) -> Tensor {
        let dIn = conv.backward(d, input: convInput, w, &sink)!
        return up ? NN.upsampleNearest2xBackward(dIn) : dIn
    }
}

/// A down block (DownBlock2D, CrossAttnDownBlock2D, AttnDownBlock2D): layers, then an optional
/// downsampler. Every layer output and the downsampler output are skip connections for the up path.
public struct DownBlock: Sendable {
    public let layers: [BlockLayer]
    public let downsample: Resample?

    struct Saved {
        var layers: [BlockLayer.Saved]
        var downsampleInput: Tensor?
    }

    var skipCount: Int { layers.count + (downsample == nil ? 0 : 1) }

    func forward(_ x: Tensor, tembAct: Tensor, context: Tensor?, _ w: Weights, save: Bool,
                 skips: inout [Tensor]) -> (Tensor, Saved?) {
        var h = x
        var saved: [BlockLayer.Saved] = []
        for layer in layers {
            let (y, s) = layer.forward(h, tembAct: tembAct, context: context, w, save: save)
            h = y
            if let s { saved.append(s) }
            skips.append(h)
        }
        var dsInput: Tensor?
        if let downsample {
            let (y, input) = downsample.forward(h, w)
            dsInput = input
            h = y
            skips.append(h)
        }
        return (h, save ? Saved(layers: saved, downsampleInput: dsInput) : nil)
    }

    /// `dOut` is the gradient at the block output; `dSkips` those of this block's skip outputs, in
    /// forward order (the last one is the block output itself).
    func backward(_ dOut: Tensor, dSkips: ArraySlice<Tensor?>, _ s: Saved, tembAct: Tensor, dTembAct: inout Tensor,
                  dContext: inout Tensor?, _ w: Weights, _ sink: inout GradientSink) -> Tensor {
        var skipIndex = dSkips.endIndex - 1
        var d = dOut
        func addSkip(_ d: inout Tensor) {
            if let g = dSkips[skipIndex] { d.add(g) }
            skipIndex -= 1
        }
        if let downsample {
            addSkip(&d)
            d = downsample.backward(d, convInput: s.downsampleInput!, w, &sink)
        }
        for (layer, saved) in zip(layers, s.layers).reversed() {
            addSkip(&d)
            d = layer.backward(d, saved, tembAct: tembAct, dTembAct: &dTembAct, dContext: &dContext, w, &sink)
        }
        return d
    }
}

/// The mid block: a ResNet, then (attention, ResNet) pairs.
public struct MidBlock: Sendable {
    public let first: ResnetBlock
    /// Attention precedes its ResNet here, unlike in down/up blocks.
    public let attentions: [BlockAttention?]
    public let resnets: [ResnetBlock]

    struct Saved {
        var first: ResnetBlock.Saved
        var attentions: [BlockAttention.Saved?]
        var resnets: [ResnetBlock.Saved]
    }

    func forward(_ x: Tensor, tembAct: Tensor, context: Tensor?, _ w: Weights, save: Bool) -> (Tensor, Saved?) {
        var (h, fs) = first.forward(x, tembAct: tembAct, w, save: save)
        var asv: [BlockAttention.Saved?] = [], rsv: [ResnetBlock.Saved] = []
        for (attention, resnet) in zip(attentions, resnets) {
            if let attention {
                let (y, s) = attention.forward(h, context: context, w, save: save)
                h = y
                asv.append(s)
            } else {
                asv.append(nil)
            }
            let (y, s) = resnet.forward(h, tembAct: tembAct, w, save: save)
            h = y
            if let s { rsv.append(s) }
        }
        return (h, save ? Saved(first: fs!, attentions: asv, resnets: rsv) : nil)
    }

    func backward(_ dOut: Tensor, _ s: Saved, tembAct: Tensor, dTembAct: inout Tensor, dContext: inout Tensor?,
                  _ w: Weights, _ sink: inout GradientSink) -> Tensor {
        var d = dOut
        for i in stride(from: resnets.count - 1, through: 0, by: -1) {
            d = resnets[i].backward(d, s.resnets[i], tembAct: tembAct, dTembAct: &dTembAct, w, &sink)
            if let attention = attentions[i], let asv = s.attentions[i] {
                d = attention.backward(d, asv, w, &sink, dContext: &dContext)
            }
        }
        return first.backward(d, s.first, tembAct: tembAct, dTembAct: &dTembAct, w, &sink)
    }
}

/// An up block (UpBlock2D, CrossAttnUpBlock2D, AttnUpBlock2D): each layer first concatenates the
/// next skip connection (popped from the end) onto its input; then an optional upsampler.
public struct UpBlock: Sendable {
    public let layers: [BlockLayer]
    public let upsample: Resample?

    struct Saved {
        var layers: [BlockLayer.Saved]
        var hiddenChannels: [Int]
        var upsampleInput: Tensor?
    }

    func forward(_ x: Tensor, skips: inout [Tensor], tembAct: Tensor, context: Tensor?, _ w: Weights,
                 save: Bool) -> (Tensor, Saved?) {
        var h = x
        var saved: [BlockLayer.Saved] = []
        var widths: [Int] = []
        for layer in layers {
            let skip = skips.removeLast()
            widths.append(h.shape[1])
            let (y, s) = layer.forward(Tensor.concatChannels([h, skip]), tembAct: tembAct, context: context, w, save: save)
            h = y
            if let s { saved.append(s) }
        }
        var usInput: Tensor?
        if let upsample {
            let (y, input) = upsample.forward(h, w)
            usInput = input
            h = y
        }
        return (h, save ? Saved(layers: saved, hiddenChannels: widths, upsampleInput: usInput) : nil)
    }

    /// Returns the gradient at the block input and, in the order the skips were consumed, the
    /// gradients of the skip connections.
    func backward(_ dOut: Tensor, _ s: Saved, tembAct: Tensor, dTembAct: inout Tensor, dContext: inout Tensor?,
                  _ w: Weights, _ sink: inout GradientSink) -> (Tensor, [Tensor]) {
        var d = dOut
        if let upsample { d = upsample.backward(d, convInput: s.upsampleInput!, w, &sink) }
        var dSkips: [Tensor] = []
        for i in stride(from: layers.count - 1, through: 0, by: -1) {
            let dCat = layers[i].backward(d, s.layers[i], tembAct: tembAct, dTembAct: &dTembAct,
                                          dContext: &dContext, w, &sink)
            let parts = dCat.splitChannels([s.hiddenChannels[i], dCat.shape[1] - s.hiddenChannels[i]])
            d = parts[0]
            dSkips.append(parts[1])
        }
        return (d, dSkips.reversed())
    }
}
