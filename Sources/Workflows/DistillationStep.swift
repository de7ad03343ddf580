import Diffusion
import Foundation
import TensorMath
import Training
import UNet

/// Seconds of one step of a student's lower level against a frozen teacher, by phase.
public struct DistillationTiming: Sendable {
    /// The teacher's forward (no tape): the targets of L_outKD and L_featKD.
    public var teacher: Double
    /// The student's forward and backward (L_ft and its parameter gradients).
    public var student: Double
    /// The AdamW update of every student parameter.
    public var update: Double
    public var total: Double { teacher + student + update }

    public init(teacher: Double, student: Double, update: Double) {
        self.teacher = teacher
        self.student = student
        self.update = update
    }
}

/// One training step of `unlearn`'s lower level as `bench train-step --teacher` times it: random clean
/// latents, noise, timesteps and context from `rng`, the teacher's forward, the student's L_ft = L_diff +
/// 2 L_outKD + 0.1 L_featKD (`LowerLevelObjective`'s weights) with its backward, then AdamW on all of the
/// student's parameters. Returns L_ft and the phase times.
public func distillationTrainStep(student: inout UNet2D, teacher: UNet2D, optimizer: inout AdamW,
                                  objective: LowerLevelObjective, batch: Int, side: Int,
                                  rng: inout NormalGenerator) throws -> (loss: Float, timing: DistillationTiming) {
    let cfg = student.config
    let clean = rng.tensor([batch, cfg.inChannels, side, side])
    let noise = rng.tensor(clean.shape)
    let timesteps = rng.integers(batch, below: objective.schedule.alphasCumprod.count)
    let context = cfg.crossAttentionDim.map { rng.tensor([batch, 77, $0]) }
    let schedule = objective.schedule
    let noised = NoisedBatch(sample: schedule.addNoise(original: clean, noise: noise, timesteps: timesteps),
                             timesteps: timesteps, cond: context,
                             target: schedule.target(schedule.config.predictionType, original: clean, noise: noise,
                                                     timesteps: timesteps))
    let t0 = DispatchTime.now()
    let teacherOut = try objective.teacherOutput(teacher, noised)
    let t1 = DispatchTime.now()
    var gradients: [String: Tensor] = [:]
    let value = try objective.evaluate(student, noised, teacher: teacherOut, into: &gradients)
    let t2 = DispatchTime.now()
    student.updateParameters { name, parameter in
        if let g = gradients[name] { optimizer.step(name, parameter: &parameter, gradient: g) }
    }
    let t3 = DispatchTime.now()
    func seconds(_ a: DispatchTime, _ b: DispatchTime) -> Double { Double(b.uptimeNanoseconds - a.uptimeNanoseconds) / 1e9 }
    return (value.total, DistillationTiming(teacher: seconds(t0, t1), student: seconds(t1, t2), update: seconds(t2, t3)))
}
