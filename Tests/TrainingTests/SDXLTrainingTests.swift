import Diffusion
import Foundation
import TensorFormats
import TensorMath
import Training
import UNet
import XCTest

/// Training an SDXL-shaped UNet (text_time added conditioning) against diffusers in float64
/// (fixtures/training/generate_sdxl.py: engine/cond_sdxl as the student, a perturbed copy as the
/// teacher, fixed inputs), and the data rules of its text_time tensors.
final class SDXLTrainingTests: XCTestCase {
    var golden: [String: Tensor] = [:]
    var student: UNet2D!
    var teacher: UNet2D!
    var timesteps: [Int] = []

    override func setUpWithError() throws {
        golden = try Fixtures.tensors("training/sdxl/losses.safetensors")
        student = try Fixtures.model("engine/cond_sdxl")
        teacher = try Fixtures.model("training/sdxl/teacher")
        timesteps = golden["timesteps"]!.data.map { Int($0) }
    }

    func value(_ name: String) -> Float { golden[name]!.data[0] }

    /// The golden inputs as a forget set in memory (two items, ESD's and ablation's tensors).
    var forget: TrainingData {
        var data = TrainingData(x0: golden["x0"]!, cond: golden["cond"]!, uncond: golden["uncond"]!, anchor: golden["anchor"]!)
        data.condPooled = golden["cond_pooled"]!
        data.timeIds = golden["time_ids"]!
        data.uncondPooled = golden["uncond_pooled"]!
        data.anchorPooled = golden["anchor_pooled"]!
        return data
    }

    func batch(_ schedule: NoiseSchedule) -> NoisedBatch {
        let x0 = golden["x0"]!, noise = golden["noise"]!
        return NoisedBatch(sample: schedule.addNoise(original: x0, noise: noise, timesteps: timesteps), timesteps: timesteps,
                           cond: golden["cond"]!, target: schedule.target(.epsilon, original: x0, noise: noise, timesteps: timesteps),
                           textTime: forget.textTime([0, 1]))
    }

    func assertClose(_ a: Float, _ b: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertLessThanOrEqual(abs(a - b), 1e-4 * max(abs(b), 1e-6), "\(what): \(a) vs torch \(b)", file: file, line: line)
    }

    func assertClose(_ a: Tensor?, _ b: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let a else { return XCTFail("\(what): no gradient", file: file, line: line) }
        XCTAssertEqual(a.shape, b.shape, what, file: file, line: line)
        let err = zip(a.data, b.data).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(err, 1e-4 * b.maxAbs(), "\(what): max error \(err) vs scale \(b.maxAbs())", file: file, line: line)
    }

    func testLowerLevelValueAndGradientsWithTheAddedConditioningMatchDiffusers() throws {
        let schedule = try Fixtures.scheduler(prediction: .epsilon)
        var objective = LowerLevelObjective(schedule: schedule)
        objective.settings.minSnrGamma = 5
        let b = batch(schedule)
        var gradients: [String: Tensor] = [:]
        let value = try objective.evaluate(student, b, teacher: try objective.teacherOutput(teacher, b), into: &gradients)
        assertClose(value.total, self.value("l_ft"), "L_ft")
        for (name, g) in golden where name.hasPrefix("grad.l_ft.") {
            assertClose(gradients[String(name.dropFirst("grad.l_ft.".count))], g, name)
        }
    }

    /// The upper level draws its teacher targets with the pooled embeddings: ESD's ∅ side with
    /// uncond_pooled, ablation's with anchor_pooled, both with the item's time ids. One forget item
    /// drawn twice makes the drawn batch's items known, so its targets are checked against the
    /// teacher called directly, and the student's loss on the golden batch against diffusers.
    func testConceptTargetsAndLossUseThePooledEmbeddings() throws {
        let schedule = try Fixtures.scheduler(prediction: .epsilon)
        var one = forget
        for key in [\TrainingData.x0, \.cond, \.anchor, \.condPooled, \.timeIds, \.anchorPooled] { one[keyPath: key] = one[keyPath: key]!.items([1]) }
        for method in [ErasureMethod.esd, .ablation] {
            var settings = ConceptSettings()
            settings.method = method
            let objective = ConceptObjective(schedule: schedule, settings: settings)
            var rng = TrainingRandom(seed: 5)
            // One teacher call for both items (chunk 2), as the direct call below makes.
            let drawn = try objective.drawBatch(from: one, size: 2, chunk: 2, teacher: teacher, rng: &rng)
            let t = drawn.timestepValues
            let expected = method == .esd
                ? try guidedPrediction(teacher, sample: drawn.sample, timesteps: t, unconditional: one.uncond!.repeatedItem(2),
                                       conditional: one.cond!.items([0, 0]), scale: -1, unconditionalTextTime: one.uncondTextTime([0, 0]),
                                       conditionalTextTime: one.textTime([0, 0]))
                : try teacher(sample: drawn.sample, timesteps: t, encoderHiddenStates: one.anchor!.items([0, 0]), textTime: one.anchorTextTime([0, 0]))
            XCTAssertEqual(drawn.target.data, expected.data, "\(method)")
            XCTAssertEqual(drawn.textTime?.timeIds.data, one.timeIds!.items([0, 0]).data, "\(method)")
        }
        var b = batch(schedule)
        let ts = b.timestepValues
        let all = forget
        b.target = try guidedPrediction(teacher, sample: b.sample, timesteps: ts, unconditional: all.uncond!.repeatedItem(2), conditional: b.cond!,
                                        scale: -1, unconditionalTextTime: all.uncondTextTime([0, 1]), conditionalTextTime: all.textTime([0, 1]))
        var gradients: [String: Tensor] = [:]
        assertClose(try ConceptObjective(schedule: schedule).evaluate(student, b, into: &gradients), value("l_cu_esd"), "L_CU ESD")
        for (name, g) in golden where name.hasPrefix("grad.l_cu_esd.") {
            assertClose(gradients[String(name.dropFirst("grad.l_cu_esd.".count))], g, name)
        }
        b.target = try teacher(sample: b.sample, timesteps: ts, encoderHiddenStates: all.anchor!, textTime: all.anchorTextTime([0, 1]))
        assertClose(try ConceptObjective(schedule: schedule).evaluate(student, b, into: &gradients), value("l_cu_ablation"), "L_CU ablation")
    }

    /// Prompt dropout replaces both the encoder states and the pooled embedding, and keeps the time ids.
    func testDroppedPromptsAreTheEmptyPromptOnBothInputs() throws {
        let data = try load("sdxl/data")
        var settings = LowerLevelSettings()
        settings.uncondProb = 1
        let objective = LowerLevelObjective(schedule: try Fixtures.scheduler(prediction: .epsilon), settings: settings)
        var rng = TrainingRandom(seed: 1)
        let b = objective.drawBatch(from: data, size: 3, rng: &rng)
        XCTAssertEqual(b.cond?.data, data.uncond!.repeatedItem(3).data)
        XCTAssertEqual(b.textTime?.textEmbeds.data, data.uncondPooled!.repeatedItem(3).data)
        XCTAssertEqual(b.textTime?.timeIds.data, data.timeIds!.items([0, 0, 0]).data, "every row of the data file has the same ids")
    }

    func load(_ name: String, role: TrainingData.Role = .data, model: String = "engine/cond_sdxl") throws -> TrainingData {
        let path = Fixtures.path("training/\(name).safetensors")
        return try TrainingData(checkpoint: try Checkpoint.open(path, options: OpenOptions(randomAccess: true)), file: path,
                                role: role, config: try Fixtures.model(model).config)
    }

    func testTextTimeDataRulesNameRuleAndTensor() throws {
        let data = try load("sdxl/data")
        XCTAssertEqual(data.condPooled?.shape, [6, 20])
        XCTAssertEqual(data.timeIds?.shape, [6, 6])
        XCTAssertNotNil(try load("sdxl/forget", role: .forget).anchorPooled)
        let cases: [(String, TrainingData.Role, TensorFormatError.Code, String)] = [
            ("missing_cond_pooled", .data, .missingTensor, "cond_pooled"), ("missing_time_ids", .data, .missingTensor, "time_ids"),
            ("cond_pooled_width", .data, .badShape, "cond_pooled"), ("time_ids_shape", .data, .badShape, "time_ids"),
            ("cond_pooled_count", .data, .countMismatch, "cond_pooled"), ("uncond_pooled_shape", .data, .badShape, "uncond_pooled"),
            ("forget_without_uncond_pooled", .forget, .missingTensor, "uncond_pooled"),
        ]
        for (name, role, code, tensor) in cases {
            XCTAssertThrowsError(try load("sdxl/bad/\(name)", role: role), name) { error in
                guard let e = error as? TensorFormatError else { return XCTFail("\(name): \(error)") }
                XCTAssertEqual(e.code, code, name)
                XCTAssertEqual(e.tensor, tensor, name)
            }
        }
    }
}
