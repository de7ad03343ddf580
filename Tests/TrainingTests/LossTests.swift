import Diffusion
import Foundation
import TensorFormats
import TensorMath
import Training
import UNet
import XCTest

/// Fixture files of fixtures/training and fixtures/engine.
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures")

    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    static func tensors(_ relative: String) throws -> [String: Tensor] {
        let file = try Checkpoint.open(path(relative), options: OpenOptions(randomAccess: true))
        var out: [String: Tensor] = [:]
        for entry in file.entries { out[entry.name] = Tensor(shape: entry.shape, data: try file.floats(of: entry)) }
        return out
    }

    static func model(_ relative: String) throws -> UNet2D {
        try UNet2D(checkpoint: try Checkpoint.open(path(relative), options: OpenOptions(randomAccess: true)))
    }

    static func scheduler(prediction: PredictionType) throws -> NoiseSchedule {
        var config = try SchedulerConfig(json: String(contentsOfFile: path("engine/scheduler_config.json"), encoding: .utf8))
        config.predictionType = prediction
        return NoiseSchedule(config)
    }
}

/// Each loss against diffusers in float64 (fixtures/training/generate.py: cond_small as the student,
/// a perturbed copy as the teacher, fixed inputs).
final class LossTests: XCTestCase {
    var golden: [String: Tensor] = [:]
    var student: UNet2D!
    var teacher: UNet2D!
    var timesteps: [Int] = []

    override func setUpWithError() throws {
        golden = try Fixtures.tensors("training/losses.safetensors")
        student = try Fixtures.model("engine/cond_small")
        teacher = try Fixtures.model("training/teacher")
        timesteps = golden["timesteps"]!.data.map { Int($0) }
    }

    func value(_ name: String) -> Float { golden[name]!.data[0] }

    func batch(_ schedule: NoiseSchedule) -> NoisedBatch {
        let x0 = golden["x0"]!, noise = golden["noise"]!
        return NoisedBatch(sample: schedule.addNoise(original: x0, noise: noise, timesteps: timesteps), timesteps: timesteps,
                           cond: golden["cond"]!,
                           target: schedule.target(schedule.config.predictionType, original: x0, noise: noise, timesteps: timesteps))
    }

    func assertClose(_ a: Float, _ b: Float, _ what: String, rtol: Float = 1e-4, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertLessThanOrEqual(abs(a - b), rtol * max(abs(b), 1e-6), "\(what): \(a) vs torch \(b)", file: file, line: line)
    }

    func assertClose(_ a: Tensor, _ b: Tensor, _ what: String, rtol: Float = 1e-3, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, b.shape, what, file: file, line: line)
        let err = zip(a.data, b.data).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(err, rtol * b.maxAbs(), "\(what): max error \(err) vs scale \(b.maxAbs())", file: file, line: line)
    }

    func testDiffusionLossWithAndWithoutMinSNR() throws {
        let eps = try Fixtures.scheduler(prediction: .epsilon)
        let b = batch(eps)
        let out = try student(sample: b.sample, timesteps: b.timestepValues, encoderHiddenStates: b.cond)
        assertClose(Losses.diffusion(prediction: out, target: b.target, timesteps: timesteps, schedule: eps, minSNRGamma: nil).loss,
                    value("l_diff_eps"), "L_diff epsilon")
        assertClose(Losses.diffusion(prediction: out, target: b.target, timesteps: timesteps, schedule: eps, minSNRGamma: 5).loss,
                    value("l_diff_eps_snr5"), "L_diff epsilon min-SNR 5")
        let v = try Fixtures.scheduler(prediction: .vPrediction)
        let vb = batch(v)
        assertClose(Losses.diffusion(prediction: out, target: vb.target, timesteps: timesteps, schedule: v, minSNRGamma: 5).loss,
                    value("l_diff_v_snr5"), "L_diff v min-SNR 5")
    }

    func testDistillationLosses() throws {
        let b = batch(try Fixtures.scheduler(prediction: .epsilon))
        let s = try student.forward(sample: b.sample, timesteps: b.timestepValues, encoderHiddenStates: b.cond, recording: false).output
        let t = try teacher.forward(sample: b.sample, timesteps: b.timestepValues, encoderHiddenStates: b.cond, recording: false).output
        assertClose(Losses.outputDistillation(student: s.sample, teacher: t.sample).loss, value("l_out"), "L_outKD")
        let feat = Losses.featureDistillation(student: s.blocks, teacher: t.blocks)
        assertClose(feat.loss, value("l_feat"), "L_featKD")
        XCTAssertEqual(Set(feat.gradients.keys), Set(student.blockOutputs), "a gradient for every block output")
    }

    func testLowerLevelValueAndGradients() throws {
        let schedule = try Fixtures.scheduler(prediction: .epsilon)
        var objective = LowerLevelObjective(schedule: schedule)
        objective.settings.minSnrGamma = 5
        let b = batch(schedule)
        var gradients: [String: Tensor] = [:]
        let value = try objective.evaluate(student, b, teacher: try objective.teacherOutput(teacher, b), into: &gradients)
        assertClose(value.total, self.value("l_ft"), "L_ft")
        for (name, g) in golden where name.hasPrefix("grad.l_ft.") {
            assertClose(gradients[String(name.dropFirst("grad.l_ft.".count))]!, g, name)
        }
    }

    func testScaledGradientsAccumulate() throws {
        let schedule = try Fixtures.scheduler(prediction: .epsilon)
        let objective = LowerLevelObjective(schedule: schedule)
        let b = batch(schedule)
        let t = try objective.teacherOutput(teacher, b)
        var once: [String: Tensor] = [:], twice: [String: Tensor] = [:]
        _ = try objective.evaluate(student, b, teacher: t, scale: 3, into: &once)
        _ = try objective.evaluate(student, b, teacher: t, scale: 1, into: &twice)
        _ = try objective.evaluate(student, b, teacher: t, scale: 2, into: &twice)
        assertClose(twice["conv_in.weight"]!, once["conv_in.weight"]!, "3x = 1x + 2x", rtol: 1e-5)
    }

    func testErasureLosses() throws {
        let schedule = try Fixtures.scheduler(prediction: .epsilon)
        var b = batch(schedule)
        let ts = b.timestepValues
        let uncond = golden["uncond"]!
        let empty = Tensor(shape: [2] + uncond.shape, data: uncond.data + uncond.data)
        let tu = try teacher(sample: b.sample, timesteps: ts, encoderHiddenStates: empty)
        let tc = try teacher(sample: b.sample, timesteps: ts, encoderHiddenStates: b.cond)
        let objective = ConceptObjective(schedule: schedule)
        for (eta, name) in [(Float(1), "l_cu_esd"), (2, "l_cu_esd_eta2")] {
            b.target = classifierFreeGuidance(unconditional: tu, conditional: tc, scale: -eta)
            var gradients: [String: Tensor] = [:]
            assertClose(try objective.evaluate(student, b, into: &gradients), value(name), name)
            if eta == 1 {
                for (gname, g) in golden where gname.hasPrefix("grad.l_cu_esd.") {
                    assertClose(gradients[String(gname.dropFirst("grad.l_cu_esd.".count))]!, g, gname)
                }
            }
        }
        b.target = try teacher(sample: b.sample, timesteps: ts, encoderHiddenStates: golden["anchor"]!)
        var gradients: [String: Tensor] = [:]
        assertClose(try objective.evaluate(student, b, into: &gradients), value("l_cu_ablation"), "ablation")
    }
}

final class OptimizationTests: XCTestCase {
    func testWarmupIsLinearThenConstant() {
        let s = LearningRateSchedule(base: 1, warmup: 4)
        XCTAssertEqual((0..<6).map(s.rate(at:)), [0.25, 0.5, 0.75, 1, 1, 1])
        XCTAssertEqual(LearningRateSchedule(base: 2, warmup: 0).rate(at: 0), 2)
    }

    func testClippingScalesToTheGlobalNorm() {
        var g = ["a": Tensor(shape: [2], data: [3, 0]), "b": Tensor(shape: [1], data: [4])]
        let norm = clipGradients(&g, maxNorm: 1)
        XCTAssertEqual(norm, 5, accuracy: 1e-6)
        XCTAssertEqual(g["a"]!.data[0], 0.6, accuracy: 1e-5)
        XCTAssertEqual(g["b"]!.data[0], 0.8, accuracy: 1e-5)
        var small = ["a": Tensor(shape: [1], data: [0.5])]
        clipGradients(&small, maxNorm: 1)
        XCTAssertEqual(small["a"]!.data, [0.5], "below the limit nothing changes")
    }

    func testPenaltyRamp() {
        let p = PenaltySettings(lambda: 10, lambdaRamp: 5)
        XCTAssertEqual(p.lambda(at: 0), 2)
        XCTAssertEqual(p.lambda(at: 4), 10)
        XCTAssertEqual(p.lambda(at: 100), 10)
        XCTAssertEqual(PenaltySettings(lambda: 10, lambdaRamp: 0).lambda(at: 0), 10)
    }

    func testRandomStreamContinuesFromItsState() {
        var a = TrainingRandom(seed: 7)
        _ = a.tensor([5])
        var b = TrainingRandom(seed: 0)
        b.state = a.state
        XCTAssertEqual(a.integers(10, below: 1000), b.integers(10, below: 1000))
    }
}

/// Every rule of formats/training-data.md, on the committed broken files.
final class TrainingDataTests: XCTestCase {
    func load(_ name: String, role: TrainingData.Role = .data) throws -> TrainingData {
        let path = Fixtures.path("training/\(name).safetensors")
        return try TrainingData(checkpoint: try Checkpoint.open(path, options: OpenOptions(randomAccess: true)), file: path,
                                role: role, config: try Fixtures.model("engine/cond_small").config)
    }

    func testValidFilesLoad() throws {
        let data = try load("data")
        XCTAssertEqual(data.count, 6)
        XCTAssertEqual(data.prompts.count, 6)
        XCTAssertNotNil(try load("forget_prompts", role: .forget).cond)
    }

    func testEachBrokenRuleNamesRuleAndTensor() throws {
        let cases: [(String, TensorFormatError.Code, String?)] = [
            ("x0_rank", .badShape, "x0"), ("x0_channels", .badShape, "x0"), ("count_mismatch", .countMismatch, "cond"),
            ("cond_dim", .badShape, "cond"), ("uncond_shape", .badShape, "uncond"), ("missing_x0", .missingTensor, "x0"),
            ("missing_cond", .missingTensor, "cond"), ("empty", .emptyData, "x0"), ("nan", .nonFinite, "x0"),
        ]
        for (name, code, tensor) in cases {
            XCTAssertThrowsError(try load("bad/\(name)"), name) { error in
                guard let e = error as? TensorFormatError else { return XCTFail("\(name): \(error)") }
                XCTAssertEqual(e.code, code, name)
                XCTAssertEqual(e.tensor, tensor, name)
                XCTAssertTrue(e.file?.hasSuffix("\(name).safetensors") ?? false, name)
            }
        }
    }

    func testForgetFileMayHoldPromptsOnlyButDataMayNot() throws {
        XCTAssertNil(try load("forget_prompts", role: .forget).x0)
        XCTAssertThrowsError(try load("forget_prompts", role: .data))
    }
}
