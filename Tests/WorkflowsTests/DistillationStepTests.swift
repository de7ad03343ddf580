import Diffusion
import Foundation
import TensorFormats
import TensorMath
import Training
import UNet
import Workflows
import XCTest

/// `bench train-step --teacher`'s step is `unlearn`'s lower level: its loss is L_ft of the batch it drew
/// (recomputed here from the same draws), and its update is one AdamW step along that loss's gradient.
final class DistillationStepTests: XCTestCase {
    private static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func testDistillationStepReportsLFtOfItsBatchAndUpdatesOnlyTheStudent() throws {
        let fixtures = Self.repository.appendingPathComponent("fixtures/engine")
        let student = try loadUNet(model: fixtures.appendingPathComponent("cond_pruned").path, open: OpenOptions())
        let teacher = try loadUNet(model: fixtures.appendingPathComponent("cond_small").path, open: OpenOptions())
        let objective = LowerLevelObjective(schedule: NoiseSchedule(SchedulerConfig()))
        var trained = student
        var optimizer = AdamW(learningRate: 1e-3)
        var rng = NormalGenerator(seed: 5)
        let (loss, _) = try distillationTrainStep(student: &trained, teacher: teacher, optimizer: &optimizer,
                                                  objective: objective, batch: 2, side: 8, rng: &rng)

        // The same draws, in the same order, through the objective directly.
        var replay = NormalGenerator(seed: 5)
        let cfg = student.config
        let clean = replay.tensor([2, cfg.inChannels, 8, 8])
        let noise = replay.tensor(clean.shape)
        let timesteps = replay.integers(2, below: objective.schedule.alphasCumprod.count)
        let context = replay.tensor([2, 77, cfg.crossAttentionDim!])
        let batch = NoisedBatch(sample: objective.schedule.addNoise(original: clean, noise: noise, timesteps: timesteps),
                                timesteps: timesteps, cond: context, target: noise)
        var gradients: [String: Tensor] = [:]
        let value = try objective.evaluate(student, batch, teacher: try objective.teacherOutput(teacher, batch),
                                           into: &gradients)
        XCTAssertNotNil(value.outputKD)
        XCTAssertEqual(loss, value.total, accuracy: 1e-6 * max(1, abs(value.total)))

        XCTAssertEqual(optimizer.states.count, student.parameters.count, "AdamW stepped every student parameter")
        XCTAssertEqual(Set(gradients.keys), Set(student.parameters.keys))
        // The replayed gradients through a fresh AdamW: the same weights, bit for bit.
        var expected = student
        var replayOptimizer = AdamW(learningRate: 1e-3)
        expected.updateParameters { name, parameter in
            if let g = gradients[name] { replayOptimizer.step(name, parameter: &parameter, gradient: g) }
        }
        for (name, before) in student.parameters {
            XCTAssertNotEqual(trained.parameters[name], before, name)
            XCTAssertEqual(trained.parameters[name], expected.parameters[name], name)
        }
    }
}
