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
    let textTime = try cfg.textTime.map { try benchTextTime($0, batch: batch, side: side, rng: &rng) }
    let schedule = objective.schedule
    let noised = NoisedBatch(sample: schedule.addNoise(original: clean, noise: noise, timesteps: timesteps),
                             timesteps: timesteps, cond: context,
                             target: schedule.target(schedule.config.predictionType, original: clean, noise: noise,
                                                     timesteps: timesteps),
                             textTime: textTime)
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

/// SDXL's added conditioning for a timing run: a random pooled embedding and the default time ids of a
/// square image 8x the latent side (the SDXL VAE's factor). Throws when the config leaves no pooled
/// width beside six time ids.
func benchTextTime(_ spec: TextTimeConfig, batch: Int, side: Int, rng: inout NormalGenerator) throws -> TextTimeInputs {
    let pooled = spec.inputDim - 6 * spec.timeEmbedDim
    guard pooled >= 1 else {
        throw UNetError(.invalidConfig, "projection_class_embeddings_input_dim",
                        "\(spec.inputDim) leaves no pooled text embedding beside 6 time ids of \(spec.timeEmbedDim)")
    }
    let pixels = Float(side * 8)
    return TextTimeInputs(textEmbeds: rng.tensor([batch, pooled]),
                          timeIds: Tensor(shape: [batch, 6], data: Array([[Float]](repeating: [pixels, pixels, 0, 0, pixels, pixels], count: batch).joined())))
}
