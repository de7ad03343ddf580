import Foundation
import TensorFormats
import TensorMath
import UNet

/// Deterministic DDIM (eta 0), as diffusers' DDIMScheduler computes `set_timesteps` and `step`.
public struct DDIMSampler: Sendable {
    public let schedule: NoiseSchedule
    public var config: SchedulerConfig { schedule.config }

    public init(_ config: SchedulerConfig) { schedule = NoiseSchedule(config) }

    /// The inference timesteps, descending, for `count` steps (diffusers' `set_timesteps`).
    public func timesteps(count: Int) -> [Int] {
        let n = config.numTrainTimesteps
        precondition(count >= 1 && count <= n, "DDIM steps \(count) must be in 1...\(n)")
        switch config.timestepSpacing {
        case .leading:
            let ratio = n / count
            return (0..<count).reversed().map { $0 * ratio + config.stepsOffset }
        case .trailing:
            // np.round(np.arange(n, 0, -n / count)) - 1. numpy's arange steps by (start + step) - start,
            // which can differ from the step in the last bit and move a value across a .5 boundary.
            let ratio = Double(n) / Double(count)
            let length = Int((Double(n) / ratio).rounded(.up))
            let delta = (Double(n) - ratio) - Double(n)
            return (0..<length).map { Int((Double(n) + Double($0) * delta).rounded(.toNearestOrEven)) - 1 }
        case .linspace:
            // np.linspace(0, n - 1, count).round()[::-1]: i * step, the last value exactly n - 1.
            let last = Double(n - 1)
            let step = count > 1 ? last / Double(count - 1) : 0
            return (0..<count).reversed().map { i in
                let v = i == count - 1 && count > 1 ? last : Double(i) * step
                return Int(v.rounded(.toNearestOrEven))
            }
        }
    }

    /// One DDIM update from `timestep` to the previous one (`timestep - n / count`) with eta 0.
    public func step(modelOutput: Tensor, timestep t: Int, sample: Tensor, stepCount: Int) -> Tensor {
        precondition(modelOutput.shape == sample.shape, "model output \(modelOutput.shape) vs sample \(sample.shape)")
        let prev = t - config.numTrainTimesteps / stepCount
        let ac = schedule.alphasCumprod
        let alphaT = ac[t]
        let alphaPrev: Float = prev >= 0 ? ac[prev] : (config.setAlphaToOne ? 1 : ac[0])
        let betaT = 1 - alphaT
        let (sa, sb) = (alphaT.squareRoot(), betaT.squareRoot())
        let saPrev = alphaPrev.squareRoot()
        let direction = (1 - alphaPrev).squareRoot()
        let clip = config.clipSample ? Float(config.clipSampleRange) : nil
        let prediction = config.predictionType
        return Tensor(uninitializedShape: sample.shape) { out in
            sample.data.withUnsafeBufferPointer { px in
                modelOutput.data.withUnsafeBufferPointer { pm in
                    for i in 0..<out.count {
                        let x = px[i], m = pm[i]
                        var x0: Float, eps: Float
                        switch prediction {
                        case .epsilon: x0 = (x - sb * m) / sa; eps = m
                        case .vPrediction: x0 = sa * x - sb * m; eps = sa * m + sb * x
                        case .sample: x0 = m; eps = (x - sa * m) / sb
                        }
                        if let clip { x0 = min(max(x0, -clip), clip) }
                        out[i] = saPrev * x0 + direction * eps
                    }
                }
            }
        }
    }

    /// Runs the whole chain from `noise`: `model(sample, t)` returns the model output for the batch.
    /// `steps` comes from an option (`--steps`, `--forget-sample-steps`): outside 1...num_train_timesteps
    /// it is refused here, before `timesteps(count:)` would trap on its precondition.
    public func sample(from noise: Tensor, steps: Int, model: (Tensor, Int) throws -> Tensor) throws -> Tensor {
        guard (1...config.numTrainTimesteps).contains(steps) else {
            throw TensorFormatError(.invalidArgument, "\(steps) sampling steps: the scheduler has \(config.numTrainTimesteps) training timesteps (use 1...\(config.numTrainTimesteps))")
        }
        let schedule = timesteps(count: steps)
        if let bad = schedule.first(where: { !(0..<config.numTrainTimesteps).contains($0) }) {
            throw TensorFormatError(.invalidArgument, "\(steps) sampling steps with steps_offset \(config.stepsOffset) reach timestep \(bad), outside the scheduler's 0...\(config.numTrainTimesteps - 1); use fewer steps")
        }
        var x = noise
        for t in schedule {
            x = step(modelOutput: try model(x, t), timestep: t, sample: x, stepCount: steps)
        }
        return x
    }
}

/// Classifier-free guidance: uncond + scale * (cond - uncond).
public func classifierFreeGuidance(unconditional: Tensor, conditional: Tensor, scale: Float) -> Tensor {
    precondition(unconditional.shape == conditional.shape, "guidance shapes differ")
    return Tensor(uninitializedShape: conditional.shape) { out in
        unconditional.data.withUnsafeBufferPointer { pu in
            conditional.data.withUnsafeBufferPointer { pc in
                for i in 0..<out.count { out[i] = pu[i] + scale * (pc[i] - pu[i]) }
            }
        }
    }
}

/// Classifier-free guidance in one model call ("join, run, split, guide"): the unconditional and the
/// conditional contexts run as one batch of twice the items (samples and timesteps repeated), and the
/// two halves of the output are combined by `classifierFreeGuidance`. One call is what diffusers does
/// and costs one pass of batched GEMMs instead of two. ESD's erasure target,
/// f(∅) − η·[f(c) − f(∅)], is this with `scale` −η. SDXL models take each side's added conditioning
/// (`unconditionalTextTime`, `conditionalTextTime`: pooled embeddings and time ids), joined the same way.
public func guidedPrediction(_ unet: UNet2D, sample: Tensor, timesteps: [Float], unconditional: Tensor,
                             conditional: Tensor, scale: Float, unconditionalTextTime: TextTimeInputs? = nil,
                             conditionalTextTime: TextTimeInputs? = nil) throws -> Tensor {
    var textTime: TextTimeInputs?
    if let u = unconditionalTextTime, let c = conditionalTextTime {
        textTime = TextTimeInputs(textEmbeds: Tensor.joined([u.textEmbeds, c.textEmbeds]),
                                  timeIds: Tensor.joined([u.timeIds, c.timeIds]))
    }
    let both = try unet(sample: Tensor.joined([sample, sample]), timesteps: timesteps + timesteps,
                        encoderHiddenStates: Tensor.joined([unconditional, conditional]), textTime: textTime)
    let (u, c) = both.halves()
    return classifierFreeGuidance(unconditional: u, conditional: c, scale: scale)
}
