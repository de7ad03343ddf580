import Foundation
import TensorMath
import UNet

/// Linear warmup then constant: update `step` (0-based) uses base * min(1, (step + 1) / warmup).
/// diffusers' constant_with_warmup starts at 0 and so wastes the first update; this starts at base / W.
public struct LearningRateSchedule: Sendable, Equatable {
    public var base: Float
    public var warmup: Int

    public init(base: Float, warmup: Int) {
        self.base = base
        self.warmup = warmup
    }

    public func rate(at step: Int) -> Float {
        guard warmup > 0, step + 1 < warmup else { return base }
        return base * Float(step + 1) / Float(warmup)
    }
}

/// Global-norm gradient clipping, as torch.nn.utils.clip_grad_norm_: the norm over every gradient
/// together; when above `maxNorm`, all are scaled by maxNorm / (norm + 1e-6). Returns the norm before.
@discardableResult
public func clipGradients(_ gradients: inout [String: Tensor], maxNorm: Float) -> Float {
    let profileMark = OpProfile.begin()
    defer { OpProfile.end("clip gradients", profileMark) }
    var total: Double = 0
    for name in gradients.keys.sorted() {
        for v in gradients[name]!.data { total += Double(v * v) }
    }
    let norm = Float(total.squareRoot())
    let coefficient = maxNorm / (norm + 1e-6)
    if coefficient < 1 {
        for name in Array(gradients.keys) { gradients[name]!.scale(by: coefficient) }
    }
    return norm
}

/// An exponential moving average of the weights (fixed decay, no warmup of the decay): smooths the
/// noise of small-batch training; when set, it is the model that gets written.
public struct ExponentialMovingAverage: Sendable {
    public var decay: Float
    public var shadow: [String: Tensor]

    public init(decay: Float, model: UNet2D) {
        self.decay = decay
        shadow = model.parameters
    }

    public mutating func update(with model: UNet2D) {
        let (d, e) = (decay, 1 - decay)
        for (name, p) in model.parameters {
            shadow[name]!.data.withUnsafeMutableBufferPointer { s in
                p.data.withUnsafeBufferPointer { q in
                    for i in 0..<s.count { s[i] = d * s[i] + e * q[i] }
                }
            }
        }
    }

    /// `model` with the averaged weights.
    public func applied(to model: UNet2D) throws -> UNet2D {
        var out = model
        for (name, value) in shadow { try out.setParameter(name, value) }
        return out
    }
}

/// One model's optimizer: AdamW with its learning-rate schedule and optional clipping, counting its
/// own updates (the interleaved schedule's upper optimizer steps every k-th iteration only).
public struct ModelOptimizer: Sendable {
    public var adam: AdamW
    public var schedule: LearningRateSchedule
    public var maxGradNorm: Float?
    public var updates = 0

    public init(learningRate: Float, warmup: Int, weightDecay: Float, maxGradNorm: Float?) {
        adam = AdamW(learningRate: learningRate, weightDecay: weightDecay)
        schedule = LearningRateSchedule(base: learningRate, warmup: warmup)
        self.maxGradNorm = maxGradNorm
    }

    /// The learning rate of the next update.
    public var currentRate: Float { schedule.rate(at: updates) }

    /// Clips, sets the scheduled rate and steps every parameter that has a gradient, consuming
    /// `gradients`: they are clipped in place (a copy of a model-sized buffer otherwise) and each is
    /// freed once its parameter has stepped, so the moments created by a first step take its room.
    public mutating func apply(_ gradients: inout [String: Tensor], to model: inout UNet2D) {
        if let maxGradNorm { clipGradients(&gradients, maxNorm: maxGradNorm) }
        adam.learningRate = schedule.rate(at: updates)
        updates += 1
        // Stepping self.adam in place: a local copy would share the moment buffers and copy them all.
        model.updateParameters { name, parameter in
            if let g = gradients.removeValue(forKey: name) { self.adam.step(name, parameter: &parameter, gradient: g) }
        }
        gradients = [:]
    }
}
