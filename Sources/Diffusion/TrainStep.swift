import Foundation
import TensorMath
import UNet

/// Seconds spent in each phase of one training step.
public struct StepTiming: Sendable {
    public var forward: Double = 0
    public var backward: Double = 0
    public var update: Double = 0
    public var total: Double { forward + backward + update }

    public init(forward: Double = 0, backward: Double = 0, update: Double = 0) {
        self.forward = forward
        self.backward = backward
        self.update = update
    }
}

/// One denoising training step: noise `clean` at `timesteps`, predict, MSE against the scheduler's
/// target (epsilon or v), backward through the whole model, AdamW on every parameter.
public func denoisingTrainStep(model: inout UNet2D, optimizer: inout AdamW, schedule: NoiseSchedule,
                               clean: Tensor, noise: Tensor, timesteps: [Int],
                               encoderHiddenStates: Tensor?) throws -> (loss: Float, timing: StepTiming) {
    var timing = StepTiming()
    var t0 = DispatchTime.now()
    func lap() -> Double {
        let now = DispatchTime.now()
        defer { t0 = now }
        return Double(now.uptimeNanoseconds - t0.uptimeNanoseconds) / 1e9
    }
    let noisy = schedule.addNoise(original: clean, noise: noise, timesteps: timesteps)
    let target = schedule.target(schedule.config.predictionType, original: clean, noise: noise, timesteps: timesteps)
    let (out, tape) = try model.forward(sample: noisy, timesteps: timesteps.map(Float.init),
                                        encoderHiddenStates: encoderHiddenStates, recording: true)
    let (loss, dOut) = NN.mseLoss(out.sample, target)
    timing.forward = lap()
    let grads = model.backward(tape!, outputGradient: dOut, parameterGradients: true)
    timing.backward = lap()
    model.updateParameters { name, parameter in
        if let g = grads.parameters[name] { optimizer.step(name, parameter: &parameter, gradient: g) }
    }
    timing.update = lap()
    return (loss, timing)
}

/// Deterministic random draws (SplitMix64; normals by Box-Muller, both values of each pair used) for
/// benchmarks, samplers and training. The whole state is one integer, so a training checkpoint can store
/// it and a resumed run draws exactly what the uninterrupted run would have drawn.
public struct NormalGenerator: Sendable, Equatable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    /// A uniform double in (0, 1).
    public mutating func uniform() -> Double {
        var generator = SplitMix64(state: state)
        let z = generator.next()
        state = generator.state
        return (Double(z >> 11) + 0.5) / Double(1 << 53)
    }

    /// Standard normal samples.
    public mutating func tensor(_ shape: [Int]) -> Tensor {
        let n = shape.reduce(1, *)
        var data = [Float](repeating: 0, count: n)
        var i = 0
        while i < n {
            let r = (-2 * log(uniform())).squareRoot(), theta = 2 * Double.pi * uniform()
            data[i] = Float(r * cos(theta))
            if i + 1 < n { data[i + 1] = Float(r * sin(theta)) }
            i += 2
        }
        return Tensor(shape: shape, data: data)
    }

    /// `count` integers uniform in 0..<bound.
    public mutating func integers(_ count: Int, below bound: Int) -> [Int] {
        (0..<count).map { _ in min(bound - 1, Int(uniform() * Double(bound))) }
    }
}
