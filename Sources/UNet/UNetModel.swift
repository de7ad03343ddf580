import TensorMath
import TensorFormats

/// Where a block output sits, for feature distillation: every down block, the mid block, every up block.
public enum BlockOutput: Hashable, Sendable, CustomStringConvertible {
    case down(Int)
    case mid
    case up(Int)

    /// "down.0", "mid", "up.2": the names used in fixtures and CLI outputs.
    public var description: String {
        switch self {
        case .down(let i): return "down.\(i)"
        case .mid: return "mid"
        case .up(let i): return "up.\(i)"
        }
    }
}

/// The result of a forward pass.
public struct UNetOutput: Sendable {
    /// The model output, [B, out_channels, H, W].
    public var sample: Tensor
    /// Every block's output, in forward order (down..., mid, up...).
    public var blocks: [(BlockOutput, Tensor)]

    public func block(_ id: BlockOutput) -> Tensor? { blocks.first { $0.0 == id }?.1 }
}

/// A block's part of the tape: what its backward needs, or, when the model recomputes activations,
/// only the block's inputs (its input and the skips it consumes), from which backward runs the
/// block's forward again just before its backward.
enum BlockRecord<Saved> {
    case saved(Saved)
    case inputs(Tensor, skips: [Tensor])
}

/// SDXL's added conditioning inputs (`added_cond_kwargs` in diffusers), one row per batch item.
public struct TextTimeInputs: Sendable {
    /// The pooled text embedding, [B, P].
    public var textEmbeds: Tensor
    /// The micro-conditioning numbers, [B, N]: SDXL's six are (original height, original width, crop
    /// top, crop left, target height, target width).
    public var timeIds: Tensor

    public init(textEmbeds: Tensor, timeIds: Tensor) {
        self.textEmbeds = textEmbeds
        self.timeIds = timeIds
    }
}

/// The added-embedding part of a tape: `add_embedding`'s input, its first linear's output and SiLU.
struct TextTimeTape {
    var timeIds: Tensor
    var input: Tensor
    var l1: Tensor
    var a1: Tensor
}

/// What a forward pass kept for its backward. Opaque; pass it back to `UNet2D.backward`.
public struct UNetTape: @unchecked Sendable {
    fileprivate var sample: Tensor
    fileprivate var context: Tensor?
    fileprivate var tEmb: Tensor
    fileprivate var l1: Tensor
    fileprivate var a1: Tensor
    fileprivate var temb: Tensor
    fileprivate var tembAct: Tensor
    fileprivate var textTime: TextTimeTape?
    fileprivate var down: [BlockRecord<DownBlock.Saved>]
    fileprivate var mid: BlockRecord<MidBlock.Saved>?
    fileprivate var up: [BlockRecord<UpBlock.Saved>]
    fileprivate var normOutInput: Tensor
    fileprivate var normOutStats: NormStatistics
    fileprivate var normOut: Tensor
    fileprivate var actOut: Tensor
}

/// Gradients of sum(output * outputGradient) (+ injected block-output terms).
public struct UNetGradients: Sendable {
    /// d/d sample, [B, C, H, W].
    public var sample: Tensor
    /// d/d encoder_hidden_states (conditional models), [B, S, D].
    public var encoderHiddenStates: Tensor?
    /// d/d text_embeds and d/d time_ids (models with text_time conditioning), [B, P] and [B, N].
    public var textEmbeds: Tensor?
    public var timeIds: Tensor?
    /// d/d parameter by diffusers name; empty when parameter gradients were not requested.
    public var parameters: [String: Tensor]
}

/// A diffusers `UNet2DConditionModel` or `UNet2DModel`, built from its config and its weights (exact
/// diffusers parameter names), with a hand-written backward per block.
///
/// Layer widths are read from the weight shapes, so pruned checkpoints (narrower ResNet conv1, fewer
/// attention heads, narrower GEGLU) load without any extra description.
public struct UNet2D: Sendable {
    public let config: UNetConfig
    /// The weights by diffusers name. Replace tensors (same shape) to update the model, e.g. after an
    /// optimizer step; shapes were validated when the model was built.
    public internal(set) var parameters: [String: Tensor]
    /// The weights of a frozen model held in 16 bits (`freeze(as:)`); empty for a model being trained.
    var narrowParameters: [String: NarrowTensor]
    /// The weights of a frozen model read from their mapped file at each use (`FrozenStorage.mapped`).
    var mappedParameters: [String: MappedTensor]

    let timeLinear1: LinearLayer
    let timeLinear2: LinearLayer
    /// `add_embedding.linear_1` and `linear_2` (text_time conditioning only).
    let addLinear1: LinearLayer?
    let addLinear2: LinearLayer?
    let convIn: ConvLayer
    let down: [DownBlock]
    let mid: MidBlock?
    let up: [UpBlock]
    let normOut: GroupNormLayer
    let convOut: ConvLayer
    /// Set on a model whose weights stay fixed (inference over many sampling steps, a frozen teacher):
    /// its forwards and backwards then transform each 3x3 convolution weight once, not at every call
    /// (`WinogradWeightCache`: results are bit-identical, a changed weight is never served stale). Nil,
    /// the default, for models being trained.
    public var frozenWeightTransforms: WinogradWeightCache?
    /// Activation recomputation (gradient checkpointing) per block: a recording forward keeps only
    /// each down, mid and up block's inputs, and backward runs each block's forward again just before
    /// its backward. The same kernels run on the same inputs, so gradients are bit-identical; it
    /// costs about one more forward per backward and bounds the tape to one block's activations.
    public var recomputesActivations = false

    /// Builds the model. Throws when a parameter is missing, has a shape the config rules out, or when
    /// the weights hold parameters the architecture does not use.
    public init(config: UNetConfig, weights: [String: Tensor]) throws {
        try self.init(config: config, table: ParameterTable(weights))
    }

    /// A dense model of `config` with freshly initialised weights (uniform +-1/sqrt(fan_in), unit
    /// norms, zero biases) from `seed`: for benchmarks and memory checks.
    public init(config: UNetConfig, randomSeed seed: UInt64) throws {
        try MemoryBudget.check(config.denseParameterEstimate.flatMap { MemoryBudget.product([$0, MemoryLayout<Float>.size]) },
                               for: "a model of this config", option: "block_out_channels")
        try self.init(config: config, table: ParameterTable(seed: seed))
    }

    init(config: UNetConfig, table: ParameterTable) throws {
        self.config = config
        var t = table
        let ch = config.blockOutChannels
        let n = ch.count
        let groups = config.normNumGroups
        let eps = config.normEps
        let conditional = config.family == .conditional

        timeLinear1 = try LinearLayer(&t, "time_embedding.linear_1", in: ch[0], out: nil, denseOut: config.timeEmbeddingDim ?? ch[0] * 4)
        let tembDim = timeLinear1.outFeatures
        if let declared = config.timeEmbeddingDim, declared != tembDim {
            throw UNetError(.invalidConfig, "time_embedding_dim", "\(declared) contradicts the weights (time_embedding.linear_1 has \(tembDim) outputs)")
        }
        timeLinear2 = try LinearLayer(&t, "time_embedding.linear_2", in: tembDim, out: tembDim)
        if let textTime = config.textTime {
            let l1 = try LinearLayer(&t, "add_embedding.linear_1", in: textTime.inputDim, out: nil, denseOut: tembDim)
            addLinear1 = l1
            addLinear2 = try LinearLayer(&t, "add_embedding.linear_2", in: l1.outFeatures, out: tembDim)
        } else {
            addLinear1 = nil
            addLinear2 = nil
        }
        convIn = try ConvLayer(&t, "conv_in", in: config.inChannels, out: ch[0], kernel: 3, padding: 1)

        /// The attention of config block `block` (heads and transformer depth are per block).
        /// `layers` overrides the block's transformer depth (up blocks: `upTransformerLayers`).
        func attention(_ p: String, channels: Int, block: Int, layers: Int? = nil, rescale: Float,
                       groups attnGroups: Int) throws -> BlockAttention {
            if conditional {
                return .transformer(try Transformer2D(&t, p, channels: channels, headCount: config.attentionHeads[block],
                                                      layers: layers ?? config.transformerLayersPerBlock[block],
                                                      contextDim: config.crossAttentionDim!, groups: groups,
                                                      linearProjection: config.useLinearProjection))
            }
            let headDim = config.attentionHeadDim ?? channels
            return .spatial(try SpatialAttention(&t, p, channels: channels, headDim: headDim, groups: attnGroups,
                                                 eps: eps, rescale: rescale))
        }

        /// ResNet `j` of a down or up block, followed by its attention when the block type has one.
        func blockLayer(_ p: String, _ j: Int, inChannels: Int, outChannels: Int, block: Int, transformerLayers: Int? = nil,
                        hasAttention: Bool) throws -> BlockLayer {
            let resnet = try ResnetBlock(&t, "\(p).resnets.\(j)", inChannels: inChannels, outChannels: outChannels,
                                         tembChannels: tembDim, groups: groups, eps: eps, outputScale: 1)
            let attn = hasAttention
                ? try attention("\(p).attentions.\(j)", channels: outChannels, block: block, layers: transformerLayers,
                                rescale: 1, groups: groups)
                : nil
            return BlockLayer(resnet: resnet, attention: attn)
        }

        var downBlocks: [DownBlock] = []
        var outputChannel = ch[0]
        for i in 0..<n {
            let inputChannel = outputChannel
            outputChannel = ch[i]
            let hasAttention = config.downBlockTypes[i] != .down
            let p = "down_blocks.\(i)"
            var layers: [BlockLayer] = []
            for j in 0..<config.layersPerBlock[i] {
                layers.append(try blockLayer(p, j, inChannels: j == 0 ? inputChannel : outputChannel, outChannels: outputChannel,
                                             block: i, hasAttention: hasAttention))
            }
            let ds = i < n - 1
                ? Resample(conv: try ConvLayer(&t, "\(p).downsamplers.0.conv", in: outputChannel, out: outputChannel,
                                                kernel: 3, stride: 2, padding: config.downsamplePadding,
                                                padBottomRight: config.downsamplePadding == 0), up: false)
                : nil
            downBlocks.append(DownBlock(layers: layers, downsample: ds))
        }
        down = downBlocks

        if config.hasMidBlock {
            let c = ch[n - 1]
            let scale = config.midBlockScaleFactor
            func resnet(_ j: Int) throws -> ResnetBlock {
                try ResnetBlock(&t, "mid_block.resnets.\(j)", inChannels: c, outChannels: c, tembChannels: tembDim,
                                groups: groups, eps: eps, outputScale: scale)
            }
            let first = try resnet(0)
            let attn = config.midBlockAttention
                ? try attention("mid_block.attentions.0", channels: c, block: n - 1, rescale: scale,
                                groups: config.attnNormNumGroups ?? groups)
                : nil
            mid = MidBlock(first: first, attentions: [attn], resnets: [try resnet(1)])
        } else {
            mid = nil
        }

        let rch = Array(ch.reversed())
        var upBlocks: [UpBlock] = []
        outputChannel = rch[0]
        for i in 0..<n {
            let prevOutput = outputChannel
            outputChannel = rch[i]
            let inputChannel = rch[min(i + 1, n - 1)]
            let block = n - 1 - i
            let hasAttention = config.upBlockTypes[i] != .up
            let count = config.layersPerBlock[block] + 1
            let p = "up_blocks.\(i)"
            var layers: [BlockLayer] = []
            for j in 0..<count {
                let skip = j == count - 1 ? inputChannel : outputChannel
                let resnetIn = j == 0 ? prevOutput : outputChannel
                layers.append(try blockLayer(p, j, inChannels: resnetIn + skip, outChannels: outputChannel, block: block,
                                             transformerLayers: conditional ? config.upTransformerLayers(i) : nil,
                                             hasAttention: hasAttention))
            }
            let us = i < n - 1
                ? Resample(conv: try ConvLayer(&t, "\(p).upsamplers.0.conv", in: outputChannel, out: outputChannel,
                                                kernel: 3, padding: 1), up: true)
                : nil
            upBlocks.append(UpBlock(layers: layers, upsample: us))
        }
        up = upBlocks

        guard ch[0] % groups == 0 else {
            throw UNetError(.invalidConfig, "norm_num_groups", "\(groups) groups do not divide \(ch[0]) channels")
        }
        normOut = try GroupNormLayer(&t, "conv_norm_out", channels: ch[0], channelsPerGroup: ch[0] / groups, eps: eps)
        convOut = try ConvLayer(&t, "conv_out", in: ch[0], out: config.outChannels, kernel: 3, padding: 1)

        if let extra = t.unused.first {
            throw UNetError(.unexpectedParameter, extra,
                            "not used by this \(config.family.rawValue) config (\(t.unused.count) unused in all)")
        }
        parameters = t.weights
        narrowParameters = t.narrow
        mappedParameters = t.mapped
    }

    /// Updates parameters in place (an optimizer step); `body` must keep each shape.
    public mutating func updateParameters(_ body: (String, inout Tensor) -> Void) {
        for name in Array(parameters.keys) {
            let shape = parameters[name]!.shape
            body(name, &parameters[name]!)
            precondition(parameters[name]!.shape == shape, "\(name) changed shape during an update")
        }
    }

    /// Number of parameters (elements).
    public var parameterCount: Int {
        parameters.values.reduce(0) { $0 + $1.count } + narrowParameters.values.reduce(0) { $0 + $1.bits.count }
            + mappedParameters.values.reduce(0) { $0 + $1.entry.elementCount }
    }

    /// What the layers read: the float32 parameters and the narrow ones.
    var weights: Weights { Weights(floats: parameters, narrow: narrowParameters, mapped: mappedParameters) }

    /// Cross-attention context width (to_k input), nil for the unconditional family.
    public var contextDim: Int? { config.crossAttentionDim }

    /// The block outputs in forward order.
    public var blockOutputs: [BlockOutput] {
        (0..<down.count).map(BlockOutput.down) + (mid == nil ? [] : [.mid]) + (0..<up.count).map(BlockOutput.up)
    }

    /// Replaces one parameter; the shape must stay the same.
    public mutating func setParameter(_ name: String, _ value: Tensor) throws {
        guard let old = parameters[name] else { throw UNetError(.unexpectedParameter, name, "not a parameter of this model") }
        guard old.shape == value.shape else {
            throw UNetError(.badShape, name, "shape \(value.shape) replaces \(old.shape)")
        }
        parameters[name] = value
    }

    /// The cache the kernels may use: none for 16-bit weights, which are widened into a fresh array at
    /// every use and so could only fill the cache with entries that never hit.
    private var weightTransformCache: WinogradWeightCache? {
        narrowParameters.isEmpty && mappedParameters.isEmpty ? frozenWeightTransforms : nil
    }

    /// Checks inputs and returns the per-item timesteps.
    private func validate(sample: Tensor, timesteps: [Float], context: Tensor?, textTime: TextTimeInputs?) throws -> [Float] {
        guard sample.rank == 4, sample.shape[1] == convIn.inChannels else {
            throw UNetError(.badInput, "sample", "shape \(sample.shape), expected [B, \(convIn.inChannels), H, W]")
        }
        let b = sample.shape[0]
        let factor = 1 << (down.count - 1)
        guard b >= 1, sample.shape[2] >= 1, sample.shape[3] >= 1 else {
            throw UNetError(.badInput, "sample", "shape \(sample.shape): batch, height and width must be at least 1")
        }
        guard sample.shape[2] % factor == 0, sample.shape[3] % factor == 0 else {
            throw UNetError(.badInput, "sample", "height and width \(sample.shape[2])x\(sample.shape[3]) must be multiples of \(factor)")
        }
        guard timesteps.count == b || timesteps.count == 1 else {
            throw UNetError(.badInput, "timestep", "\(timesteps.count) timesteps for batch \(b)")
        }
        if let d = config.crossAttentionDim {
            guard let context, context.rank == 3, context.shape[0] == b, context.shape[1] >= 1, context.shape[2] == d else {
                throw UNetError(.badInput, "encoder_hidden_states", "shape \(context?.shape ?? []), expected [\(b), S >= 1, \(d)]")
            }
        } else if context != nil {
            throw UNetError(.badInput, "encoder_hidden_states", "given to an unconditional UNet2DModel")
        }
        if let spec = config.textTime {
            guard let textTime else {
                throw UNetError(.badInput, "text_embeds", "missing (addition_embed_type text_time needs text_embeds and time_ids)")
            }
            let e = textTime.textEmbeds, ids = textTime.timeIds
            guard e.rank == 2, e.shape[0] == b, e.shape[1] >= 1, e.shape[1] < spec.inputDim else {
                throw UNetError(.badInput, "text_embeds", "shape \(e.shape), expected [\(b), P] with P below \(spec.inputDim)")
            }
            let idCount = (spec.inputDim - e.shape[1]) / spec.timeEmbedDim
            guard ids.rank == 2, ids.shape[0] == b, ids.shape[1] >= 1,
                  e.shape[1] + ids.shape[1] * spec.timeEmbedDim == spec.inputDim else {
                throw UNetError(.badInput, "time_ids", "shape \(ids.shape), expected [\(b), \(idCount)]: text_embeds width \(e.shape[1]) + ids x addition_time_embed_dim \(spec.timeEmbedDim) must be projection_class_embeddings_input_dim \(spec.inputDim)")
            }
            guard ids.data.allSatisfy(\.isFinite) else { throw UNetError(.badInput, "time_ids", "holds a value that is not finite") }
        } else if textTime != nil {
            throw UNetError(.badInput, "text_embeds", "given to a UNet without addition_embed_type text_time")
        }
        return timesteps.count == b ? timesteps : Array(repeating: timesteps[0], count: b)
    }

    /// Inference: the model output only, nothing kept for backward.
    public func callAsFunction(sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor? = nil,
                               textTime: TextTimeInputs? = nil) throws -> Tensor {
        try forward(sample: sample, timesteps: timesteps, encoderHiddenStates: encoderHiddenStates, textTime: textTime,
                    recording: false).output.sample
    }

    /// A forward pass returning the output and every block output; with `recording`, also the tape
    /// that `backward` needs (activations are kept only then).
    /// `textTime` is required by, and only accepted by, a model with `addition_embed_type: text_time`.
    public func forward(sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor? = nil,
                        textTime: TextTimeInputs? = nil, recording: Bool) throws -> (output: UNetOutput, tape: UNetTape?) {
        try NN.withWinogradWeightCache(weightTransformCache) {
            try uncachedForward(sample: sample, timesteps: timesteps, encoderHiddenStates: encoderHiddenStates,
                                textTime: textTime, recording: recording)
        }
    }

    /// diffusers' `text_time` branch: add_time_proj of every time id (flattened per item), after
    /// text_embeds, through add_embedding. Returns the embedding to add to the time embedding.
    private func addedEmbedding(_ inputs: TextTimeInputs, _ w: Weights) -> (Tensor, TextTimeTape) {
        let spec = config.textTime!
        let b = inputs.timeIds.shape[0], count = inputs.timeIds.shape[1]
        let projected = NN.timestepEmbedding(inputs.timeIds.data, dim: spec.timeEmbedDim, flipSinToCos: config.flipSinToCos,
                                             downscaleFreqShift: config.freqShift)
            .reshaped([b, count * spec.timeEmbedDim])
        let input = Tensor.concatChannels([inputs.textEmbeds, projected])
        let l1 = addLinear1!.forward(input, w)
        let a1 = NN.silu(l1)
        return (addLinear2!.forward(a1, w), TextTimeTape(timeIds: inputs.timeIds, input: input, l1: l1, a1: a1))
    }

    /// The gradients of text_embeds and time_ids from that of the added embedding.
    private func addedEmbeddingBackward(_ d: Tensor, _ tape: TextTimeTape, _ w: Weights,
                                        _ sink: inout GradientSink) -> (textEmbeds: Tensor, timeIds: Tensor) {
        let spec = config.textTime!
        let dA1 = addLinear2!.backward(d, input: tape.a1, w, &sink)!
        let dL1 = NN.siluBackward(dA1, input: tape.l1)
        let dInput = addLinear1!.backward(dL1, input: tape.input, w, &sink)!
        let b = tape.timeIds.shape[0], count = tape.timeIds.shape[1]
        let parts = dInput.splitChannels([tape.input.shape[1] - count * spec.timeEmbedDim, count * spec.timeEmbedDim])
        let dIds = NN.timestepEmbeddingBackward(parts[1].reshaped([b * count, spec.timeEmbedDim]), timesteps: tape.timeIds.data,
                                                flipSinToCos: config.flipSinToCos, downscaleFreqShift: config.freqShift)
        return (parts[0], Tensor(shape: [b, count], data: dIds))
    }

    private func uncachedForward(sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor?, textTime: TextTimeInputs?,
                                 recording: Bool) throws -> (output: UNetOutput, tape: UNetTape?) {
        let ts = try validate(sample: sample, timesteps: timesteps, context: encoderHiddenStates, textTime: textTime)
        // The sample fits in memory (it exists); its activations are estimated before they are made.
        try checkInput(batch: sample.shape[0], height: sample.shape[2], width: sample.shape[3], training: recording,
                       option: "the batch or the image size")
        let w = weights
        let save = recording
        let recompute = recording && recomputesActivations
        let tEmb = NN.timestepEmbedding(ts, dim: timeLinear1.inFeatures, flipSinToCos: config.flipSinToCos,
                                        downscaleFreqShift: config.freqShift)
        let l1 = timeLinear1.forward(tEmb, w)
        let a1 = NN.silu(l1)
        var temb = timeLinear2.forward(a1, w)
        var textTimeTape: TextTimeTape?
        if let textTime {
            let (added, tape) = addedEmbedding(textTime, w)
            temb.add(added)
            textTimeTape = tape
        }
        let tembAct = NN.silu(temb)
        let context = encoderHiddenStates

        var h = convIn.forward(sample, w)
        var skips: [Tensor] = [h]
        var blocks: [(BlockOutput, Tensor)] = []
        // Recomputing runs the recording forward too (the same kernels as backward's rerun, so the
        // outputs match it to the bit) and drops each block's saved state once the block is done.
        func record<S>(_ saved: S?, input: Tensor, skips consumed: [Tensor] = []) -> BlockRecord<S>? {
            guard let saved else { return nil }
            return recompute ? .inputs(input, skips: consumed) : .saved(saved)
        }
        var downSaved: [BlockRecord<DownBlock.Saved>] = []
        for (i, block) in down.enumerated() {
            let (y, s) = block.forward(h, tembAct: tembAct, context: context, w, save: save, skips: &skips)
            if let r = record(s, input: h) { downSaved.append(r) }
            h = y
            blocks.append((.down(i), h))
        }
        var midSaved: BlockRecord<MidBlock.Saved>?
        if let mid {
            let (y, s) = mid.forward(h, tembAct: tembAct, context: context, w, save: save)
            midSaved = record(s, input: h)
            h = y
            blocks.append((.mid, h))
        }
        var upSaved: [BlockRecord<UpBlock.Saved>] = []
        for (i, block) in up.enumerated() {
            let consumed = recompute ? Array(skips.suffix(block.layers.count)) : []
            let (y, s) = block.forward(h, skips: &skips, tembAct: tembAct, context: context, w, save: save)
            if let r = record(s, input: h, skips: consumed) { upSaved.append(r) }
            h = y
            blocks.append((.up(i), h))
        }
        let (nOut, stats) = normOut.forward(h, w)
        let act = NN.silu(nOut)
        let out = convOut.forward(act, w)
        let tape = save
            ? UNetTape(sample: sample, context: context, tEmb: tEmb, l1: l1, a1: a1, temb: temb, tembAct: tembAct,
                       textTime: textTimeTape, down: downSaved, mid: midSaved, up: upSaved, normOutInput: h, normOutStats: stats,
                       normOut: nOut, actOut: act)
            : nil
        return (UNetOutput(sample: out, blocks: blocks), tape)
    }

    /// Reverse mode: the gradient of sum(output * outputGradient) + sum over `blockGradients` of
    /// sum(block output * gradient), with respect to the inputs and, when `parameterGradients`, every
    /// parameter (a frozen teacher passes false and no parameter-gradient memory is used).
    public func backward(_ tape: UNetTape, outputGradient: Tensor?, blockGradients: [BlockOutput: Tensor] = [:],
                         parameterGradients: Bool) -> UNetGradients {
        var sink = GradientSink(enabled: parameterGradients)
        return backward(tape, outputGradient: outputGradient, blockGradients: blockGradients, sink: &sink)
    }

    /// Like `backward(_:outputGradient:blockGradients:parameterGradients:)`, but adds the parameter
    /// gradients into `accumulated` instead of returning a fresh set: several losses (for example
    /// L_CU + lambda * L_ft, with lambda folded into their output gradients) then share one gradient
    /// buffer per parameter. The returned `parameters` is empty.
    public func backward(_ tape: UNetTape, outputGradient: Tensor?, blockGradients: [BlockOutput: Tensor] = [:],
                         accumulatingInto accumulated: inout [String: Tensor]) -> UNetGradients {
        var sink = GradientSink(enabled: true)
        sink.values = accumulated
        accumulated = [:]
        var result = backward(tape, outputGradient: outputGradient, blockGradients: blockGradients, sink: &sink)
        accumulated = sink.values
        result.parameters = [:]
        return result
    }

    private func backward(_ tape: UNetTape, outputGradient: Tensor?, blockGradients: [BlockOutput: Tensor],
                          sink: inout GradientSink) -> UNetGradients {
        NN.withWinogradWeightCache(weightTransformCache) {
            uncachedBackward(tape, outputGradient: outputGradient, blockGradients: blockGradients, sink: &sink)
        }
    }

    private func uncachedBackward(_ tape: UNetTape, outputGradient: Tensor?, blockGradients: [BlockOutput: Tensor],
                                  sink: inout GradientSink) -> UNetGradients {
        let w = weights
        let parameterGradients = sink.enabled
        var dContext: Tensor? = tape.context.map { Tensor(zeros: $0.shape) }
        var dTembAct = Tensor(zeros: tape.tembAct.shape)
        let tembAct = tape.tembAct

        var d: Tensor
        if let g = outputGradient {
            let dAct = convOut.backward(g, input: tape.actOut, w, &sink)!
            let dn = NN.siluBackward(dAct, input: tape.normOut)
            d = normOut.backward(dn, input: tape.normOutInput, stats: tape.normOutStats, w, &sink)
        } else {
            d = Tensor(zeros: tape.normOutInput.shape)
        }

        // Skip gradients, indexed like the forward's skip list.
        var dSkips: [Tensor?] = Array(repeating: nil, count: 1 + down.reduce(0) { $0 + $1.skipCount })
        // Up block i pops skips from the end: it consumes [end_i - count_i, end_i), last index first.
        var ends: [Int] = []
        var top = dSkips.count
        for block in up {
            ends.append(top)
            top -= block.layers.count
        }
        for (i, block) in up.enumerated().reversed() {
            if let g = blockGradients[.up(i)] { d.add(g) }
            let saved: UpBlock.Saved
            switch tape.up[i] {
            case .saved(let s): saved = s
            case .inputs(let x, let skips):
                var pending = skips
                saved = block.forward(x, skips: &pending, tembAct: tembAct, context: tape.context, w, save: true).1!
            }
            let (dIn, dSk) = block.backward(d, saved, tembAct: tembAct, dTembAct: &dTembAct,
                                            dContext: &dContext, w, &sink)
            d = dIn
            for (k, g) in dSk.enumerated() { dSkips[ends[i] - 1 - k] = g }
        }
        if let mid, let record = tape.mid {
            if let g = blockGradients[.mid] { d.add(g) }
            let saved: MidBlock.Saved
            switch record {
            case .saved(let s): saved = s
            case .inputs(let x, _): saved = mid.forward(x, tembAct: tembAct, context: tape.context, w, save: true).1!
            }
            d = mid.backward(d, saved, tembAct: tembAct, dTembAct: &dTembAct, dContext: &dContext, w, &sink)
        }
        var skipEnd = dSkips.count
        for (i, block) in down.enumerated().reversed() {
            if let g = blockGradients[.down(i)] { d.add(g) }
            let start = skipEnd - block.skipCount
            let saved: DownBlock.Saved
            switch tape.down[i] {
            case .saved(let s): saved = s
            case .inputs(let x, _):
                var scratch: [Tensor] = []
                saved = block.forward(x, tembAct: tembAct, context: tape.context, w, save: true, skips: &scratch).1!
            }
            d = block.backward(d, dSkips: dSkips[start..<skipEnd], saved, tembAct: tembAct,
                               dTembAct: &dTembAct, dContext: &dContext, w, &sink)
            skipEnd = start
        }
        if let g = dSkips[0] { d.add(g) }
        let dSample = convIn.backward(d, input: tape.sample, w, &sink)!

        var dTextTime: (textEmbeds: Tensor, timeIds: Tensor)?
        if parameterGradients || tape.textTime != nil {
            let dTemb = NN.siluBackward(dTembAct, input: tape.temb)
            if let textTimeTape = tape.textTime { dTextTime = addedEmbeddingBackward(dTemb, textTimeTape, w, &sink) }
            if parameterGradients {
                let dA1 = timeLinear2.backward(dTemb, input: tape.a1, w, &sink)!
                let dL1 = NN.siluBackward(dA1, input: tape.l1)
                _ = timeLinear1.backward(dL1, input: tape.tEmb, w, &sink, needInput: false)
            }
        }
        return UNetGradients(sample: dSample, encoderHiddenStates: dContext, textEmbeds: dTextTime?.textEmbeds,
                             timeIds: dTextTime?.timeIds, parameters: sink.values)
    }
}
