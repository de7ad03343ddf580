import Diffusion
import Foundation
import TensorFormats
import TensorMath
import Training
import UNet
import XCTest

/// The robust upper level (`unlearn --upper-attack adversarial`): the offset it finds must make L_CU
/// worse for the current student (else training on it is training on the plain prompts), stay in its
/// ball, and be part of the state a run resumes from.
final class UpperAttackTests: XCTestCase {
    private func data(_ name: String, role: TrainingData.Role) throws -> TrainingData {
        let path = Fixtures.path("training/\(name).safetensors")
        return try TrainingData(checkpoint: try Checkpoint.open(path, options: OpenOptions(randomAccess: true)), file: path,
                                role: role, config: try Fixtures.model("engine/cond_small").config)
    }

    private func attack(steps: Int = 3, radius: Float = 1.5, every: Int = 1, forget: TrainingData) -> UpperAttack {
        var settings = UpperAttackSettings()
        settings.kind = .adversarial
        settings.steps = steps
        settings.radius = radius
        settings.every = every
        let cond = forget.cond!
        return UpperAttack(settings: settings, tokens: cond.shape[1], width: cond.shape[2])
    }

    func testTheAdversarialOffsetRaisesTheUpperLossInsideItsBall() throws {
        let schedule = try Fixtures.scheduler(prediction: .epsilon)
        let student = try Fixtures.model("engine/cond_small"), teacher = try Fixtures.model("training/teacher")
        let forget = try data("forget", role: .forget)
        var rng = TrainingRandom(seed: 5)
        let chunks = try ConceptObjective(schedule: schedule).drawChunks(from: forget, size: 2, parallel: .solo, teacher: teacher, rng: &rng)
        var robust = attack(forget: forget)
        let plain = try robust.loss(student, on: chunks, gradient: false).loss
        try robust.refresh(student, on: chunks)
        let attacked = try robust.loss(student, on: chunks, gradient: false).loss
        XCTAssertGreaterThan(attacked, plain * 1.001, "the offset must raise L_CU: plain \(plain), attacked \(attacked)")
        let width = robust.offset.shape[1]
        let norms = (0..<robust.offset.shape[0]).map { row in
            robust.offset.data[row * width..<(row + 1) * width].reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
        }
        XCTAssertTrue(norms.allSatisfy { $0 <= 1.5 * (1 + 1e-5) }, "every row stays in the ball: \(norms)")
        XCTAssertGreaterThan(norms.max() ?? 0, 0.5, "the ascent moved the offset: \(norms)")
        // The shifted prompts are the drawn ones plus the offset, nothing else changes.
        let shifted = robust.shifted(chunks[0])
        XCTAssertEqual(shifted.sample, chunks[0].sample)
        XCTAssertEqual(shifted.target, chunks[0].target)
        XCTAssertEqual(shifted.cond!.data[3] - chunks[0].cond!.data[3], robust.offset.data[3], accuracy: 1e-5)
    }

    func testTheRefreshFollowsTheUpperStepCount() throws {
        let robust = attack(every: 3, forget: try data("forget", role: .forget))
        XCTAssertEqual((0..<7).filter { robust.refreshes(atUpperStep: $0) }, [0, 3, 6])
    }

    /// The offset is in the state: a penalty run with the attack, restored after one step, continues bit
    /// for bit; a state whose offset leaves the ball is refused.
    func testTheOffsetIsPartOfTheResumableState() throws {
        let schedule = try Fixtures.scheduler(prediction: .epsilon)
        let forget = try data("forget", role: .forget)
        func method() throws -> PenaltyMethod {
            func optimizer() -> ModelOptimizer { ModelOptimizer(learningRate: 1e-3, warmup: 0, weightDecay: 0.01, maxGradNorm: 1) }
            return PenaltyMethod(student: try Fixtures.model("engine/cond_small"), teacher: try Fixtures.model("training/teacher"),
                                 data: try data("data", role: .data), forget: forget,
                                 lower: LowerLevelObjective(schedule: schedule), upper: ConceptObjective(schedule: schedule),
                                 batchSize: 2, penalty: PenaltySettings(innerSteps: 1, lambda: 0.5),
                                 lowerOptimizer: optimizer(), upperOptimizer: optimizer(), upperAttack: attack(steps: 1, every: 2, forget: forget))
        }
        var trained = try method()
        var rng = TrainingRandom(seed: 9)
        _ = try trained.step(0, rng: &rng)
        var state = TrainingState()
        try trained.store(into: &state)
        let offset = try XCTUnwrap(state.tensors["attack/offset"])
        XCTAssertTrue(offset.data.contains { $0 != 0 }, "step 0 refreshed the offset")
        var restored = try method()
        try restored.restore(from: state, file: "state")
        XCTAssertEqual(restored.upperAttack?.offset, trained.upperAttack?.offset)
        var rngAgain = rng
        _ = try trained.step(1, rng: &rng)
        _ = try restored.step(1, rng: &rngAgain)
        XCTAssertEqual(restored.student.parameters, trained.student.parameters, "step 1 (no refresh) uses the stored offset")

        var tampered = state
        tampered.tensors["attack/offset"] = Tensor(shape: offset.shape, data: offset.data.map { $0 * 10 })
        var refused = try method()
        XCTAssertThrowsError(try refused.restore(from: tampered, file: "state")) { error in
            XCTAssertEqual((error as? TensorFormatError)?.tensor, "attack/offset")
        }
    }
}
