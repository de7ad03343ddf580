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
