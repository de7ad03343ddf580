import Diffusion
import TensorFormats
import TensorMath
import UNet

/// A batch noised for one step: x_t, its timesteps, the prompts the model sees (with SDXL's added
/// conditioning), and the scheduler's target for the clean samples.
public struct NoisedBatch: Sendable {
    public var sample: Tensor
    public var timesteps: [Int]
    public var cond: Tensor?
    public var target: Tensor
    /// The pooled embeddings and time ids of the items' prompts (text_time models only).
    public var textTime: TextTimeInputs?

    public init(sample: Tensor, timesteps: [Int], cond: Tensor?, target: Tensor, textTime: TextTimeInputs? = nil) {
        self.sample = sample
        self.timesteps = timesteps
        self.cond = cond
        self.target = target
        self.textTime = textTime
    }

    /// Items `indices` of the batch.
    func items(_ indices: [Int]) -> NoisedBatch {
        NoisedBatch(sample: sample.items(indices), timesteps: indices.map { timesteps[$0] }, cond: cond?.items(indices),
                    target: target.items(indices), textTime: textTime?.items(indices))
    }

    public var timestepValues: [Float] { timesteps.map(Float.init) }
}

/// The values of one evaluation of L_ft; `outputKD`/`featureKD` are nil without a teacher.
public struct LowerLevelValue: Sendable {
    public var total: Float
    public var diffusion: Float
    public var outputKD: Float?
    public var featureKD: Float?
}

/// The lower level, L_ft = w_diff L_diff + w_out L_outKD + w_feat L_featKD (the paper's code defaults
/// 1, 2, 0.1); without a teacher it is plain diffusion training.
public struct LowerLevelObjective: Sendable {
    public var schedule: NoiseSchedule
    /// The weights and the prompt dropout, as the options and the run description hold them.
    public var settings: LowerLevelSettings

    public init(schedule: NoiseSchedule, settings: LowerLevelSettings = LowerLevelSettings()) {
        self.schedule = schedule
        self.settings = settings
    }

    /// Draws `size` items with replacement, then per item (in this order): the dropout coin when
    /// dropout is on, the timestep, and the noise; returns items `shard` of it (all when nil).
    public func drawBatch(from data: TrainingData, size: Int, shard: Range<Int>? = nil, rng: inout TrainingRandom) -> NoisedBatch {
        let x0 = data.x0!
        let indices = rng.integers(size, below: x0.shape[0])
        let clean = x0.items(indices)
        var cond = data.cond?.items(indices)
        var textTime = data.textTime(indices)
        if settings.uncondProb > 0, var c = cond, let uncond = data.uncond {
            // A dropped prompt is the empty prompt on every input it feeds: its encoder states and, for
            // SDXL, its pooled embedding (diffusers' SDXL scripts encode "" for both).
            let per = uncond.count
            for b in 0..<size where Float(rng.uniform()) < settings.uncondProb {
                c.data.replaceSubrange(b * per..<(b + 1) * per, with: uncond.data)
                if let pooled = data.uncondPooled, textTime != nil {
                    textTime!.textEmbeds.data.replaceSubrange(b * pooled.count..<(b + 1) * pooled.count, with: pooled.data)
                }
            }
            cond = c
        }
        let timesteps = rng.integers(size, below: schedule.config.numTrainTimesteps)
        let noise = rng.tensor(clean.shape)
        return NoisedBatch(sample: schedule.addNoise(original: clean, noise: noise, timesteps: timesteps),
                           timesteps: timesteps, cond: cond,
                           target: schedule.target(schedule.config.predictionType, original: clean, noise: noise, timesteps: timesteps),
                           textTime: textTime)
            .slice(shard)
    }

    /// The frozen teacher's output and block outputs on `batch` (no tape).
    public func teacherOutput(_ teacher: UNet2D, _ batch: NoisedBatch) throws -> UNetOutput {
        try teacher.forward(sample: batch.sample, timesteps: batch.timestepValues, encoderHiddenStates: batch.cond,
                            textTime: batch.textTime, recording: false).output
    }

    /// L_ft of `model` on `batch`; adds `scale` times its parameter gradient into `gradients` (the
    /// penalty step passes lambda here, so both levels share one backward buffer).
    public func evaluate(_ model: UNet2D, _ batch: NoisedBatch, teacher: UNetOutput?, scale: Float = 1,
                         into gradients: inout [String: Tensor]) throws -> LowerLevelValue {
        let (out, tape) = try model.forward(sample: batch.sample, timesteps: batch.timestepValues,
                                            encoderHiddenStates: batch.cond, textTime: batch.textTime, recording: true)
        let (wDiff, wOut, wFeat) = (settings.wDiff, settings.wOut, settings.wFeat)
        let (diff, dDiff) = Losses.diffusion(prediction: out.sample, target: batch.target, timesteps: batch.timesteps,
                                             schedule: schedule, minSNRGamma: settings.minSnrGamma)
        var value = LowerLevelValue(total: wDiff * diff, diffusion: diff)
        var outputGradient = dDiff * (scale * wDiff)
        var blockGradients: [BlockOutput: Tensor] = [:]
        if let teacher {
            let (outKD, dOut) = Losses.outputDistillation(student: out.sample, teacher: teacher.sample)
            outputGradient.add(dOut, scaledBy: scale * wOut)
            let (featKD, dBlocks) = Losses.featureDistillation(student: out.blocks, teacher: teacher.blocks)
            if wFeat != 0 {
                for (id, g) in dBlocks { blockGradients[id] = g * (scale * wFeat) }
            }
            value.outputKD = outKD
            value.featureKD = featKD
            value.total += wOut * outKD + wFeat * featKD
        }
        _ = model.backward(tape!, outputGradient: outputGradient, blockGradients: blockGradients, accumulatingInto: &gradients)
        return value
    }
}

/// How the upper level removes a concept.
public enum ErasureMethod: String, Sendable, CaseIterable {
    /// ESD with teacher guidance: the student's conditional prediction is pulled to
    /// f_T(x_t,t,∅) − η·[f_T(x_t,t,c) − f_T(x_t,t,∅)].
    case esd
    /// Concept ablation (Kumari et al. 2023, model-based): pulled to the teacher's prediction for the
    /// anchor prompt, f_T(x_t,t,c_anchor).
    case ablation
    /// Unified Concept Editing (Gandikota et al. 2024): the closed-form edit of the cross-attention
    /// projections (`ClosedFormEdit`, `erase --method uce`); it draws no noised batches.
    case uce
}

/// The upper level, L_CU = MSE(f_s(x_t,t,c), target(teacher)) over noised forget images.
public struct ConceptObjective: Sendable {
    public var schedule: NoiseSchedule
    /// The method and ESD's eta, as the options and the run description hold them.
    public var settings: ConceptSettings
    /// The UCE objective, set when the method is `.uce` (`unlearn --upper uce`).
    public var closedForm: ClosedFormObjective?

    public init(schedule: NoiseSchedule, settings: ConceptSettings = ConceptSettings()) {
        self.schedule = schedule
        self.settings = settings
    }

    /// Draws forget items with replacement, then their timesteps and noise, and sets the target from
    /// the frozen teacher (per `chunk` items, one forward for ESD's unconditional and conditional predictions)
    /// for items `shard` (all when nil) only.
    public func drawBatch(from forget: TrainingData, size: Int, shard: Range<Int>? = nil, chunk: Int = 1,
                          teacher: UNet2D, rng: inout TrainingRandom) throws -> NoisedBatch {
        if settings.method == .uce {
            // UCE's loss reads the projections alone: each item is a placeholder that only keeps the
            // chunk structure the data-parallel step pairs with the lower level's batches.
            let n = (shard ?? 0..<size).count
            return NoisedBatch(sample: Tensor(zeros: [n, 1]), timesteps: Array(repeating: 0, count: n), cond: nil, target: Tensor(zeros: [n, 1]))
        }
        let x0 = forget.x0!
        let drawn = rng.integers(size, below: x0.shape[0])
        let allTimesteps = rng.integers(size, below: schedule.config.numTrainTimesteps)
        let allNoise = rng.tensor([size] + x0.shape.dropFirst())
        let part = shard ?? 0..<size
        let indices = Array(drawn[part]), timesteps = Array(allTimesteps[part])
        let noise = part.count == size ? allNoise : allNoise.items(Array(part))
        let clean = x0.items(indices)
        let sample = schedule.addNoise(original: clean, noise: noise, timesteps: timesteps)
        let cond = forget.cond!.items(indices)
        let textTime = forget.textTime(indices)
        // One teacher call per `chunk` items (DataParallel.chunk), so a chunk's targets are the same
        // computation whatever the shard: the result must not depend on how the batch is split among ranks.
        var targets: [Tensor] = []
        for start in stride(from: 0, to: indices.count, by: chunk) {
            let part = Array(start..<Swift.min(indices.count, start + chunk))
            let x = sample.items(part), c = cond.items(part), t = part.map { Float(timesteps[$0]) }
            let items = part.map { indices[$0] }
            switch settings.method {
            case .esd:
                targets.append(try guidedPrediction(teacher, sample: x, timesteps: t, unconditional: forget.uncond!.repeatedItem(part.count),
                                                    conditional: c, scale: -settings.eta, unconditionalTextTime: forget.uncondTextTime(items),
                                                    conditionalTextTime: forget.textTime(items)))
            case .ablation:
                targets.append(try teacher(sample: x, timesteps: t, encoderHiddenStates: forget.anchor!.items(items),
                                           textTime: forget.anchorTextTime(items)))
            case .uce:
                throw TrainingError(.invalidArgument, "the UCE upper level draws no noised batches")
            }
        }
        let target = Tensor.joined(targets)
        return NoisedBatch(sample: sample, timesteps: timesteps, cond: cond, target: target, textTime: textTime)
    }

    /// L_CU of `model` on `batch` (whose target is set); adds `scale` times its gradient into `gradients`.
    public func evaluate(_ model: UNet2D, _ batch: NoisedBatch, scale: Float = 1,
                         into gradients: inout [String: Tensor]) throws -> Float {
        if settings.method == .uce {
            guard let closedForm else { throw TrainingError(.invalidArgument, "the UCE upper level was given no embeddings") }
            return try closedForm.evaluate(model, scale: scale, into: &gradients)
        }
        let (out, tape) = try model.forward(sample: batch.sample, timesteps: batch.timestepValues,
                                            encoderHiddenStates: batch.cond, textTime: batch.textTime, recording: true)
        var (loss, grad) = NN.mseLoss(out.sample, batch.target)
        if scale != 1 { grad.scale(by: scale) }
        _ = model.backward(tape!, outputGradient: grad, accumulatingInto: &gradients)
        return loss
    }
}
