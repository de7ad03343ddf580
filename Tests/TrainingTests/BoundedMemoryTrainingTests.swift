import Diffusion
import Foundation
import TensorFormats
import TensorMath
import Training
import UNet
import XCTest

/// What bounds an SD-size bilevel iteration's memory (issue 12 §3) leaves the training as it was:
/// recomputing activations gives the same student and copy to the bit, and the optimizer consumes
/// its gradients instead of copying them.
final class BoundedMemoryTrainingTests: XCTestCase {
    private func data(_ name: String, role: TrainingData.Role) throws -> TrainingData {
        let path = Fixtures.path("training/\(name).safetensors")
        return try TrainingData(checkpoint: try Checkpoint.open(path, options: OpenOptions(randomAccess: true)), file: path,
                                role: role, config: try Fixtures.model("engine/cond_small").config)
    }

    /// Two penalty iterations (K = 2) with the student recomputing activations or not.
    private func penaltyRun(recomputing: Bool) throws -> PenaltyMethod {
        var student = try Fixtures.model("engine/cond_small")
        student.recomputesActivations = recomputing
        let schedule = try Fixtures.scheduler(prediction: .epsilon)
        var method = PenaltyMethod(student: student, teacher: try Fixtures.model("training/teacher"),
                                   data: try data("data", role: .data), forget: try data("forget", role: .forget),
                                   lower: LowerLevelObjective(schedule: schedule), upper: ConceptObjective(schedule: schedule),
                                   batchSize: 2, penalty: PenaltySettings(innerSteps: 2, lambda: 10),
                                   lowerOptimizer: ModelOptimizer(learningRate: 1e-3, warmup: 0, weightDecay: 1e-2, maxGradNorm: 1),
                                   upperOptimizer: ModelOptimizer(learningRate: 1e-3, warmup: 0, weightDecay: 1e-2, maxGradNorm: 1))
        var rng = TrainingRandom(seed: 3)
        for i in 0..<2 { _ = try method.step(i, rng: &rng) }
        return method
    }

    func testRecomputingStudentTrainsToTheSameBits() throws {
        let plain = try penaltyRun(recomputing: false)
        let recomputed = try penaltyRun(recomputing: true)
        XCTAssertEqual(recomputed.student.parameters, plain.student.parameters)
        XCTAssertEqual(recomputed.lowerCopy.parameters, plain.lowerCopy.parameters)
        XCTAssertNotEqual(plain.student.parameters, try Fixtures.model("engine/cond_small").parameters, "the run trained")
    }

    func testOptimizerConsumesAndClipsGradientsInPlace() throws {
        var model = try Fixtures.model("engine/cond_small")
        let name = model.parameters.keys.sorted()[0]
        let shape = model.parameters[name]!.shape
        var gradients = [name: Tensor(repeating: 10, shape: shape)]
        var optimizer = ModelOptimizer(learningRate: 1e-3, warmup: 0, weightDecay: 0, maxGradNorm: 1)
        let before = model.parameters[name]!
        optimizer.apply(&gradients, to: &model)
        XCTAssertTrue(gradients.isEmpty, "the gradients are consumed")
        XCTAssertEqual(optimizer.updates, 1)
        // Adam's first step moves every element by lr (the clipped gradient's sign), whatever its scale.
        let moved = zip(model.parameters[name]!.data, before.data).map { $1 - $0 }
        for d in moved { XCTAssertEqual(d, 1e-3, accuracy: 1e-6) }
        XCTAssertEqual(optimizer.adam.states[name]?.step, 1)
    }
}
