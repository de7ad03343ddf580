import Diffusion
import Foundation
import TensorFormats
import TensorMath
import Training
import UNet
import XCTest

/// The one step every training method is made of (BatchStep.swift) and the state a method resumes from.
final class BatchStepTests: XCTestCase {
    private func data(_ name: String, role: TrainingData.Role) throws -> TrainingData {
        let path = Fixtures.path("training/\(name).safetensors")
        return try TrainingData(checkpoint: try Checkpoint.open(path, options: OpenOptions(randomAccess: true)), file: path,
                                role: role, config: try Fixtures.model("engine/cond_small").config)
    }

    /// Every loss is a mean over the batch's items, so the chunks evaluated alone and averaged give the
    /// loss and the gradient of the whole batch evaluated in one pass (up to float32 rounding).
    func testChunkMeansAreTheWholeBatchMean() throws {
        let model = try Fixtures.model("engine/cond_small")
        let objective = LowerLevelObjective(schedule: try Fixtures.scheduler(prediction: .epsilon))
        let retain = try data("data", role: .data)
        var rng = TrainingRandom(seed: 5)
        let batch = objective.drawBatch(from: retain, size: 4, rng: &rng)
        var whole: [String: Tensor] = [:]
        let value = try objective.evaluate(model, batch, teacher: nil, into: &whole)
        var again = TrainingRandom(seed: 5)
        let ranksWay = DataParallel.solo.splitting(into: DataParallel.rankChunks)
        let chunks = objective.drawChunks(from: retain, size: 4, parallel: ranksWay, rng: &again)
        XCTAssertEqual(again.state, rng.state, "drawing in chunks takes the same randomness")
        XCTAssertEqual(chunks.count, 4, "a batch of 4 is evaluated one item at a time")
        let (gradients, values) = try ranksWay.batchMean(of: model, over: chunks, batchSize: 4) { m, item, g in
            [Double(try objective.evaluate(m, item, teacher: nil, into: &g).total)]
        }
        XCTAssertEqual(values[0], Double(value.total), accuracy: 1e-5 * Double(value.total))
        XCTAssertEqual(Set(gradients.keys), Set(whole.keys))
        for (name, g) in whole {
            let scale = g.data.map(abs).max() ?? 0
            let error = zip(g.data, gradients[name]!.data).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(error, 1e-4 * scale + 1e-9, name)
        }
    }

    /// A method stored after a step and restored into a fresh one continues bit for bit: the lists of
    /// models and optimizers (`CheckpointedMethod`) cover everything the next step reads. The penalty
    /// method is the one with two models and two optimizers.
    func testRestoredPenaltyMethodContinuesBitForBit() throws {
        let schedule = try Fixtures.scheduler(prediction: .epsilon)
        func method() throws -> PenaltyMethod {
            func optimizer() -> ModelOptimizer { ModelOptimizer(learningRate: 1e-3, warmup: 2, weightDecay: 0.01, maxGradNorm: 1) }
            return PenaltyMethod(student: try Fixtures.model("engine/cond_small"), teacher: try Fixtures.model("training/teacher"),
                                 data: try data("data", role: .data), forget: try data("forget", role: .forget),
                                 lower: LowerLevelObjective(schedule: schedule), upper: ConceptObjective(schedule: schedule),
                                 batchSize: 2, penalty: PenaltySettings(innerSteps: 1, lambda: 0.5),
                                 lowerOptimizer: optimizer(), upperOptimizer: optimizer())
        }
        var trained = try method()
        var rng = TrainingRandom(seed: 9)
        _ = try trained.step(0, rng: &rng)
        var state = TrainingState()
        try trained.store(into: &state)
        XCTAssertEqual(Set(state.tensors.keys.map { String($0.prefix { $0 != "/" }) }), ["model", "copy", "adam-lower", "adam-upper"])
        var restored = try method()
        XCTAssertNotEqual(restored.student.parameters, trained.student.parameters, "the step changed the student")
        try restored.restore(from: state, file: "state")
        XCTAssertEqual(restored.student.parameters, trained.student.parameters)
        XCTAssertEqual(restored.lowerCopy.parameters, trained.lowerCopy.parameters)
        XCTAssertEqual(restored.upperOptimizer.updates, 1)
        var rngAgain = rng
        _ = try trained.step(1, rng: &rng)
        _ = try restored.step(1, rng: &rngAgain)
        XCTAssertEqual(restored.student.parameters, trained.student.parameters)
        XCTAssertEqual(restored.lowerCopy.parameters, trained.lowerCopy.parameters)
    }
}
