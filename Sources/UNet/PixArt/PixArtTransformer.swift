import TensorFormats
import TensorMath

/// What a PixArt forward kept for its backward. Opaque; pass it back to `PixArtTransformer.backward`.
public struct PixArtTape: @unchecked Sendable {
    fileprivate var sampleShape: [Int]
    fileprivate var patches: Tensor
    fileprivate var tEmb: Tensor, e1: Tensor, a1: Tensor, emb: Tensor, se: Tensor, t6: Tensor
    fileprivate var caption: Tensor?, c1: Tensor?, cg: Tensor?
    fileprivate var context: Tensor
    fileprivate var blocks: [PixArtBlock.Saved]
    fileprivate var modulations: [Tensor]
    fileprivate var finalInput: Tensor, finalStats: NormStatistics, finalNorm: Tensor, finalTable: Tensor, finalMod: Tensor
}

/// Gradients of sum(output * outputGradient).
public struct PixArtGradients: Sendable {
    /// d/d sample, [B, C, H, W].
    public var sample: Tensor
    /// d/d encoder_hidden_states, [B, T, caption width].
    public var encoderHiddenStates: Tensor
    /// d/d parameter by diffusers name; empty when parameter gradients were not requested.
    public var parameters: [String: Tensor]
}

/// diffusers `PixArtTransformer2DModel` (PixArt-Alpha/Sigma's DiT) built from its config and weights
/// (exact diffusers names), with a hand-written backward:
///
///     tokens = PatchEmbed(sample) + 2-D sin-cos positions                       [B, N, D], N = (H/p)(W/p)
///     emb    = timestep_embedder(sinusoid_256(t));  t6 = adaln_single.linear(silu(emb))   [B, D], [B, 6D]
///     caption = caption_projection(encoder_hidden_states)   (Linear, GELU-tanh, Linear; when present)
///     tokens = PixArtBlock_i(tokens, caption, mask, scale_shift_table_i + t6)   for every block
///     out    = unpatchify(proj_out(LN(tokens) * (1 + scale) + shift)),  (shift, scale) = scale_shift_table + emb
///
/// Per-block heads and FFN widths are read from the tensors (width-pruned checkpoints load); the block
/// count from the config. PixArt-Alpha's resolution/aspect-ratio conditioning is refused by the config.
public struct PixArtTransformer: Sendable {
    public let config: PixArtConfig
    /// The weights by diffusers name; shapes were validated when the model was built.
    public internal(set) var parameters: [String: Tensor]

    /// `pos_embed.proj` (a Conv2d with kernel and stride p) as a linear map over flattened patches.
    let patchWeight: String
    let patchBias: String
    /// The residual width D and the patch embedding's input channels.
    public let dim: Int
    let channels: Int
    let time1: LinearLayer
    let time2: LinearLayer
    let adaLinear: LinearLayer
    let caption1: LinearLayer?
    let caption2: LinearLayer?
    public let blocks: [PixArtBlock]
    let projOut: LinearLayer
    let finalTable = "scale_shift_table"

    /// The sinusoid width of PixArt's timestep projection (`Timesteps(num_channels=256)`).
    static let timestepChannels = 256

    /// Builds the model. Throws when a parameter is missing, has a shape the config rules out, or when
    /// the weights hold parameters the architecture does not use.
    public init(config: PixArtConfig, weights: [String: Tensor]) throws {
        try self.init(config: config, table: ParameterTable(weights))
    }

    /// A dense model of `config` with freshly initialised weights from `seed` (benchmarks).
    public init(config: PixArtConfig, randomSeed seed: UInt64) throws {
        try MemoryBudget.check(config.denseParameterEstimate.flatMap { MemoryBudget.product([$0, MemoryLayout<Float>.size]) },
                               for: "a model of this config", option: "num_layers")
        try self.init(config: config, table: ParameterTable(seed: seed))
    }

    /// The structure alone from tensor shapes (`inspect`: a header read, no weight in memory), checked
    /// as the model itself is.
    public init(config: PixArtConfig, shapes: [String: [Int]]) throws {
        try self.init(config: config, table: ParameterTable(shapes: shapes))
    }

    init(config: PixArtConfig, table: ParameterTable) throws {
        self.config = config
        var t = table
        let p = config.patchSize
        patchWeight = "pos_embed.proj.weight"
        patchBias = "pos_embed.proj.bias"
        let s = try t.shape(patchWeight, [config.innerDim, config.inChannels, p, p])
        let d = s[0]
        dim = d
        channels = s[1]
        _ = try t.shape(patchBias, [dim], fill: .zeros)
        time1 = try LinearLayer(&t, "adaln_single.emb.timestep_embedder.linear_1", in: Self.timestepChannels, out: dim)
        time2 = try LinearLayer(&t, "adaln_single.emb.timestep_embedder.linear_2", in: dim, out: dim)
        adaLinear = try LinearLayer(&t, "adaln_single.linear", in: dim, out: 6 * dim)
        if let captionChannels = config.captionChannels {
            caption1 = try LinearLayer(&t, "caption_projection.linear_1", in: captionChannels, out: dim)
            caption2 = try LinearLayer(&t, "caption_projection.linear_2", in: dim, out: dim)
        } else {
            caption1 = nil
            caption2 = nil
        }
        blocks = try (0..<config.numLayers).map { i in
            try PixArtBlock(&t, "transformer_blocks.\(i)", dim: d, contextDim: config.crossAttentionDim,
                            headDim: config.attentionHeadDim, eps: config.normEps)
        }
        _ = try t.shape(finalTable, [2, dim])
        projOut = try LinearLayer(&t, "proj_out", in: dim, out: p * p * config.outChannels)
        if let extra = t.unused.first {
            throw UNetError(.unexpectedParameter, extra,
                            "not used by this \(PixArtConfig.className) config (\(t.unused.count) unused in all)")
        }
        parameters = t.weights
    }

    var weights: Weights { Weights(floats: parameters) }

    /// Refuses inputs that do not fit the model, before anything is computed: shapes, the caption width,
    /// the mask's shape, sides that are not whole patches, and activations that cannot fit in memory.
    public func checkInputs(sample: [Int], timesteps: Int, encoderHiddenStates: [Int], mask: [Int]?,
                            training: Bool) throws {
        guard sample.count == 4 else { throw UNetError(.badInput, "sample", "shape \(sample): expected [B, C, H, W]") }
        let (b, c, h, w) = (sample[0], sample[1], sample[2], sample[3])
        guard b >= 1, h >= 1, w >= 1 else { throw UNetError(.badInput, "sample", "shape \(sample): every size must be at least 1") }
        guard c == channels else {
            throw UNetError(.badInput, "sample", "has \(c) channels; the model takes \(channels) (pos_embed.proj)")
        }
        let p = config.patchSize
        guard h % p == 0, w % p == 0 else {
            throw UNetError(.badInput, "sample", "height and width \(h)x\(w) must be multiples of patch_size \(p)")
        }
        guard timesteps == b else { throw UNetError(.badInput, "timestep", "\(timesteps) values for a batch of \(b)") }
        let contextWidth = caption1?.inFeatures ?? blocks[0].attn2.toK.inFeatures
        guard encoderHiddenStates.count == 3, encoderHiddenStates[0] == b, encoderHiddenStates[1] >= 1,
              encoderHiddenStates[2] == contextWidth else {
            throw UNetError(.badInput, "encoder_hidden_states",
                            "shape \(encoderHiddenStates): expected [\(b), T, \(contextWidth)] with T at least 1")
        }
        if let mask, mask != [b, encoderHiddenStates[1]] {
            throw UNetError(.badInput, "encoder_attention_mask", "shape \(mask): expected [\(b), \(encoderHiddenStates[1])]")
        }
        try MemoryBudget.check(activationBytes(batch: b, tokens: (h / p) * (w / p), captionTokens: encoderHiddenStates[1],
                                               training: training),
                               for: "the activations of \(b) x \(h)x\(w) samples", option: "sample")
    }

    /// Bytes alive at the peak, nil on overflow: a block's working set (residual, norms, q/k/v, one
    /// block of attention scores, the FFN's two activations) and, when training, every block's tape.
    func activationBytes(batch: Int, tokens: Int, captionTokens: Int, training: Bool) -> Int? {
        let ffn = blocks.map(\.ffIn.outFeatures).max() ?? 0
        guard let perToken = MemoryBudget.sum([MemoryBudget.product([14, dim]), MemoryBudget.product([3, ffn])]),
              let block = MemoryBudget.product([batch, tokens, perToken]),
              let caption = MemoryBudget.product([batch, captionTokens, 4, dim]) else { return nil }
        let tapes = training ? MemoryBudget.product([block, blocks.count]) : block
        return MemoryBudget.sum([tapes, caption, MemoryBudget.product([batch, tokens, 1 << 8])]).flatMap { MemoryBudget.product([$0, 4]) }
    }

    /// The model output [B, out_channels, H, W] (no tape).
    public func callAsFunction(sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor,
                               encoderAttentionMask: Tensor? = nil) throws -> Tensor {
        try forward(sample: sample, timesteps: timesteps, encoderHiddenStates: encoderHiddenStates,
                    encoderAttentionMask: encoderAttentionMask, recording: false).output
    }

    /// A forward pass; `recording` keeps what `backward` needs. `encoderAttentionMask` [B, T] holds 1 for
    /// caption tokens to keep and 0 for padding, as the pipeline passes it (nil: every token is kept).
    public func forward(sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor, encoderAttentionMask: Tensor? = nil,
                        recording: Bool) throws -> (output: Tensor, tape: PixArtTape?) {
        try checkInputs(sample: sample.shape, timesteps: timesteps.count, encoderHiddenStates: encoderHiddenStates.shape,
                        mask: encoderAttentionMask?.shape, training: recording)
        let w = weights
        let (b, h, wd) = (sample.shape[0], sample.shape[2], sample.shape[3])
        let p = config.patchSize, (hp, wp) = (h / p, wd / p)

        let patches = PixArtOps.patches(sample, patch: p, channelsLast: false)
        var tokens = NN.linear(patches, weight: w.at(patchWeight).reshaped([dim, channels * p * p]), bias: w.at(patchBias))
        let positions = PixArtOps.positionEmbedding(dim: dim, height: hp, width: wp, baseSize: config.baseSize,
                                                    interpolationScale: config.interpolationScale)
        for item in 0..<b { tokens.data.withUnsafeMutableBufferPointer { pt in
            positions.data.withUnsafeBufferPointer { pp in
                for i in 0..<(hp * wp * dim) { pt[item * hp * wp * dim + i] += pp[i] }
            }
        } }

        let tEmb = NN.timestepEmbedding(timesteps, dim: Self.timestepChannels, flipSinToCos: true, downscaleFreqShift: 0)
        let e1 = time1.forward(tEmb, w)
        let a1 = NN.silu(e1)
        let emb = time2.forward(a1, w)
        let se = NN.silu(emb)
        let t6 = adaLinear.forward(se, w)

        var c1: Tensor?, cg: Tensor?
        let context: Tensor
        if let caption1, let caption2 {
            c1 = caption1.forward(encoderHiddenStates, w)
            cg = PixArtOps.geluTanh(c1!)
            context = caption2.forward(cg!, w)
        } else {
            context = encoderHiddenStates
        }
        let keyBias = encoderAttentionMask.flatMap(Self.keyBias)

        var saves: [PixArtBlock.Saved] = [], modulations: [Tensor] = []
        for block in blocks {
            let mod = block.modulation(t6, w)
            let (y, s) = block.forward(tokens, context: context, keyBias: keyBias, modulation: mod, w, save: recording)
            tokens = y
            if let s {
                saves.append(s)
                modulations.append(mod)
            }
        }

        let finalMod = finalModulation(emb, w)
        let (normed, stats) = NN.layerNorm(tokens, weight: nil, bias: nil, eps: 1e-6)
        let modulated = PixArtOps.modulate(normed, finalMod, shiftRow: 0, scaleRow: 1)
        let projected = projOut.forward(modulated, w)
        let output = PixArtOps.image(fromPatches: projected, patch: p, channels: config.outChannels, height: hp, width: wp,
                                     channelsLast: true)
        guard recording else { return (output, nil) }
        return (output, PixArtTape(sampleShape: sample.shape, patches: patches, tEmb: tEmb, e1: e1, a1: a1, emb: emb, se: se,
                                   t6: t6, caption: caption1 == nil ? nil : encoderHiddenStates, c1: c1, cg: cg,
                                   context: context, blocks: saves, modulations: modulations, finalInput: tokens,
                                   finalStats: stats, finalNorm: normed, finalTable: finalMod, finalMod: modulated))
    }

    /// (1 - mask) * -10000 per caption token, as diffusers biases cross-attention scores; nil when the
    /// mask keeps every token (a zero bias changes nothing).
    static func keyBias(_ mask: Tensor) -> [Float]? {
        guard mask.data.contains(where: { $0 != 1 }) else { return nil }
        return mask.data.map { (1 - $0) * -10000 }
    }

    /// The final layer's (shift, scale) rows, [B, 2, D]: `scale_shift_table` plus the embedded timestep.
    func finalModulation(_ emb: Tensor, _ w: Weights) -> Tensor {
        let table = w.at(finalTable)
        let b = emb.shape[0]
        return Tensor(uninitializedShape: [b, 2, dim]) { out in
            for item in 0..<b {
                for row in 0..<2 {
                    for i in 0..<dim { out[(item * 2 + row) * dim + i] = table.data[row * dim + i] + emb.data[item * dim + i] }
                }
            }
        }
    }

    /// Gradients of sum(output * outputGradient) with respect to the sample, the caption embeddings and
    /// (when `parameterGradients`) every parameter.
    public func backward(_ tape: PixArtTape, outputGradient: Tensor, parameterGradients: Bool) -> PixArtGradients {
        var sink = GradientSink(enabled: parameterGradients)
        let w = weights
        let p = config.patchSize
        let (b, h, wd) = (tape.sampleShape[0], tape.sampleShape[2], tape.sampleShape[3])
        let (hp, wp) = (h / p, wd / p)

        let dProjected = PixArtOps.patches(outputGradient, patch: p, channelsLast: true)
        let dModulated = projOut.backward(dProjected, input: tape.finalMod, w, &sink)!
        var dFinal = Tensor(zeros: [b, 2, dim])
        let dNormed = PixArtOps.modulateBackward(dModulated, input: tape.finalNorm, tape.finalTable, shiftRow: 0, scaleRow: 1,
                                                 dTable: &dFinal)
        var d = NN.layerNormBackward(dNormed, input: tape.finalInput, stats: tape.finalStats, weight: nil, needs: .input).input!
        var dEmb = Tensor(zeros: [b, dim])
        for item in 0..<b {
            for i in 0..<dim { dEmb.data[item * dim + i] = dFinal.data[item * 2 * dim + i] + dFinal.data[(item * 2 + 1) * dim + i] }
        }
        sink.add(finalTable, Self.batchSum(dFinal))

        var dT6 = Tensor(zeros: [b, 6 * dim])
        var dContext: Tensor? = Tensor(zeros: tape.context.shape)
        for (index, block) in blocks.enumerated().reversed() {
            var dMod = Tensor(zeros: [b, 6, dim])
            d = block.backward(d, tape.blocks[index], modulation: tape.modulations[index], w, &sink,
                               dModulation: &dMod, dContext: &dContext)
            sink.add(block.scaleShiftTable, Self.batchSum(dMod))
            dT6.add(dMod.reshaped([b, 6 * dim]))
        }

        let dSe = adaLinear.backward(dT6, input: tape.se, w, &sink)!
        dEmb.add(NN.siluBackward(dSe, input: tape.emb))
        let dA1 = time2.backward(dEmb, input: tape.a1, w, &sink)!
        _ = time1.backward(NN.siluBackward(dA1, input: tape.e1), input: tape.tEmb, w, &sink, needInput: false)

        var dCaption = dContext!
        if let caption1, let caption2, let caption = tape.caption, let c1 = tape.c1, let cg = tape.cg {
            let dcg = caption2.backward(dCaption, input: cg, w, &sink)!
            dCaption = caption1.backward(PixArtOps.geluTanhBackward(dcg, input: c1), input: caption, w, &sink)!
        }

        let patchMatrix = w.at(patchWeight).reshaped([dim, channels * p * p])
        let g = NN.linearBackward(d, input: tape.patches, weight: patchMatrix, hasBias: true, needs: sink.needs)
        if let gw = g.weight { sink.add(patchWeight, gw.reshaped([dim, channels, p, p])) }
        sink.add(patchBias, g.bias)
        let dSample = PixArtOps.image(fromPatches: g.input!, patch: p, channels: channels, height: hp, width: wp,
                                      channelsLast: false)
        return PixArtGradients(sample: dSample, encoderHiddenStates: dCaption, parameters: sink.values)
    }

    /// [B, R, D] summed over the batch: [R, D] (a table's gradient from its per-item rows).
    static func batchSum(_ t: Tensor) -> Tensor {
        let b = t.shape[0], n = t.count / Swift.max(1, b)
        var out = Tensor(zeros: Array(t.shape.dropFirst()))
        for item in 0..<b { for i in 0..<n { out.data[i] += t.data[item * n + i] } }
        return out
    }
}

extension PixArtConfig {
    /// Parameters of the dense model (heads x head_dim wide, FFN 4x), nil on overflow: sizes the check
    /// before a random-init model is generated.
    public var denseParameterEstimate: Int? {
        let d = innerDim, p = patchSize
        let block = MemoryBudget.sum([MemoryBudget.product([4, d, d + 1]), MemoryBudget.product([2, d, crossAttentionDim]),
                                      MemoryBudget.product([2, d, d]), MemoryBudget.product([8, d, d]),
                                      MemoryBudget.product([11, d])])
        return MemoryBudget.sum([MemoryBudget.product([numLayers, block ?? Int.max / 2]),
                                 MemoryBudget.product([inChannels * p * p + 1, d]),
                                 MemoryBudget.product([256 + d + 2, d]), MemoryBudget.product([7, d, d + 1]),
                                 MemoryBudget.product([captionChannels ?? 0, d]), MemoryBudget.product([d, d]),
                                 MemoryBudget.product([d + 1, p * p * outChannels])])
    }
}

extension PixArtTransformer {
    /// Builds the model from an opened checkpoint: its diffusers config (config.json beside the weights
    /// or the `dmsurgery.config` metadata key) and its tensors, any float dtype widened to float32.
    public init(checkpoint: Checkpoint) throws {
        guard let json = checkpoint.configJSON else {
            throw UNetError(.invalidConfig, checkpoint.name,
                            "no diffusers config (config.json beside the weights or `dmsurgery.config` metadata)")
        }
        let config = try PixArtConfig(json: json)
        let source = checkpoint.isSequential ? try checkpoint.withRandomAccess() : checkpoint
        var weights: [String: Tensor] = [:]
        for entry in source.entries {
            weights[entry.name] = Tensor(shape: entry.shape, data: try source.floats(of: entry))
        }
        try self.init(config: config, weights: weights)
    }

    /// Multiply-accumulates of one forward of one sample with `tokens` image tokens and `captionTokens`
    /// caption tokens, per part: `patch_embed`, `timestep` (adaLN-single and the caption projection),
    /// `block.<i>`, `final`. Linear layers and the two attention products; norms and activations left out.
    public func forwardMACs(tokens: Int, captionTokens: Int) -> [(name: String, macs: Int)] {
        let p = config.patchSize
        var parts: [(String, Int)] = [("patch_embed", tokens * dim * channels * p * p)]
        var timestep = time1.inFeatures * dim + dim * dim + dim * 6 * dim
        if let caption1, let caption2 {
            timestep += captionTokens * (caption1.inFeatures * dim + caption2.inFeatures * dim)
        }
        parts.append(("timestep", timestep))
        for (i, b) in blocks.enumerated() {
            let self1 = 4 * tokens * dim * b.attn1.toQ.outFeatures + 2 * tokens * tokens * b.attn1.toQ.outFeatures
            let inner2 = b.attn2.toQ.outFeatures
            let cross = 2 * tokens * dim * inner2 + 2 * captionTokens * b.attn2.toK.inFeatures * inner2
                + 2 * tokens * captionTokens * inner2
            let ff = 2 * tokens * dim * b.ffIn.outFeatures
            parts.append(("block.\(i)", self1 + cross + ff))
        }
        parts.append(("final", tokens * dim * projOut.outFeatures))
        return parts
    }
}
