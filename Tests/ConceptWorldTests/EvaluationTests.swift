import ConceptWorld
import Diffusion
import Foundation
import TensorMath
import UNet
import XCTest

final class EvaluationTests: XCTestCase {
    /// The teacher's shape (`test-unet-config.json`), or a narrow one (`tiny-unet-config.json`) where the
    /// test runs the model many times: debug builds run the kernels unoptimised.
    private func config(_ name: String = "test-unet-config.json", _ edit: (inout [String: Any]) -> Void = { _ in }) throws -> UNetConfig {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("fixtures/concept-world/" + name)
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        edit(&object)
        return try UNetConfig(json: String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
    }

    func testRandomModelEvaluatesToNumbersInRange() throws {
        let unet = try UNet2D(config: try config("tiny-unet-config.json"), randomSeed: 1)
        XCTAssertNoThrow(try Evaluation.checkFits(unet))
        var settings = EvaluationSettings()
        settings.samples = 1
        settings.steps = 1
        settings.validationPerPrompt = 2
        settings.heldoutPerPrompt = 1
        let report = try Evaluation.evaluate(unet, scheduler: SchedulerConfig(), settings: settings)
        XCTAssertEqual(report.forgetSamples, 9)
        XCTAssertEqual(report.retainSamples, 27)
        XCTAssertEqual(report.heldoutImages, 27)
        XCTAssertEqual(report.images.shape, [36, 3, 16, 16])
        for x in [report.forgetRate, report.retainAccuracy, report.retainColour, report.retainShape, report.retainStyle, report.forgetContent] {
            XCTAssertTrue(x >= 0 && x <= 1, "\(x)")
        }
        XCTAssertTrue(report.heldoutLoss.isFinite && report.heldoutLoss > 0)
        XCTAssertTrue(report.detectorsTrusted)
        XCTAssertEqual(report.prompts.map(\.samples).reduce(0, +), 36)
        XCTAssertEqual(report.forgetStyles.map(\.style), ["flat", "outline", "stripes", "checker", "none"])
        XCTAssertEqual(report.forgetStyles.map(\.count).reduce(0, +), report.forgetSamples)
        XCTAssertEqual(Double(report.forgetStyles[2].count) / 9, report.forgetRate, accuracy: 1e-12)
    }

    func testBothConceptsAreScoredTogetherAndApart() throws {
        let unet = try UNet2D(config: try config("tiny-unet-config.json"), randomSeed: 1)
        var settings = EvaluationSettings()
        settings.samples = 1
        settings.steps = 1
        settings.validationPerPrompt = 1
        settings.heldoutPerPrompt = 1
        settings.concept = .both
        let report = try Evaluation.evaluate(unet, scheduler: SchedulerConfig(), settings: settings)
        XCTAssertEqual(report.images.shape, [48, 3, 16, 16])
        XCTAssertEqual(report.forgetSamples, 21)
        XCTAssertEqual(report.retainSamples, 27)
        XCTAssertEqual(report.heldoutImages, 27)
        XCTAssertEqual(report.forgetRates.map(\.concept), [.style, .object])
        XCTAssertEqual(report.forgetRates.map(\.samples), [12, 12], "the 3 striped crosses count for both concepts")
        XCTAssertEqual(report.forgetShapes.map(\.shape), ["square", "circle", "triangle", "cross", "none"])
        // Any concept shown counts once: the joint rate lies between the larger share and the sum.
        let shown = report.prompts.map(\.forgetConcept).reduce(0, +)
        XCTAssertEqual(Double(shown) / 21, report.forgetRate, accuracy: 1e-12)
        let perConcept = report.forgetRates.map { $0.rate * Double($0.samples) }.reduce(0, +)
        XCTAssertLessThanOrEqual(Double(shown), perConcept + 1e-9)
        XCTAssertEqual(try Evaluation.heldoutLoss(unet, scheduler: SchedulerConfig(), perPrompt: 1, concept: .object).images, 36)
    }

    func testHeldoutLossIgnoresChunkingAndFollowsTheSchedulersTarget() throws {
        let unet = try UNet2D(config: try config("tiny-unet-config.json"), randomSeed: 2)
        let a = try Evaluation.heldoutLoss(unet, scheduler: SchedulerConfig(), perPrompt: 1)
        let b = try Evaluation.heldoutLoss(unet, scheduler: SchedulerConfig(), perPrompt: 1, chunk: 5)
        XCTAssertEqual(a.loss, b.loss, accuracy: 1e-6 * a.loss, "chunking must not change the loss")
        XCTAssertEqual(a.images, 27)
        var v = SchedulerConfig()
        v.predictionType = .vPrediction
        XCTAssertNotEqual(try Evaluation.heldoutLoss(unet, scheduler: v, perPrompt: 1).loss, a.loss, "the target follows the scheduler")
    }

    func testTeacherShapedModelFitsAndRuns() throws {
        let teacher = try UNet2D(config: try config(), randomSeed: 3)
        XCTAssertNoThrow(try Evaluation.checkFits(teacher))
        let loss = try Evaluation.heldoutLoss(teacher, scheduler: SchedulerConfig(), perPrompt: 1)
        XCTAssertTrue(loss.loss.isFinite && loss.loss > 0)
    }

    func testPrunedModelIsEvaluated() throws {
        // Narrow the first ResNet's conv1 to half its rows (whole GroupNorm groups), as pruning does.
        let dense = try UNet2D(config: try config("tiny-unet-config.json"), randomSeed: 4)
        var weights = dense.parameters
        let p = "down_blocks.0.resnets.0."
        func rows(_ t: Tensor, _ n: Int) -> Tensor {
            let row = t.count / t.shape[0]
            return Tensor(shape: [n] + t.shape.dropFirst(), data: Array(t.data[..<(n * row)]))
        }
        for name in ["conv1.weight", "conv1.bias", "time_emb_proj.weight", "time_emb_proj.bias", "norm2.weight", "norm2.bias"] {
            weights[p + name] = rows(try XCTUnwrap(weights[p + name], name), 4)
        }
        let conv2 = try XCTUnwrap(weights[p + "conv2.weight"])
        let (o, i) = (conv2.shape[0], conv2.shape[1])
        weights[p + "conv2.weight"] = Tensor(shape: [o, 4, 3, 3], data: (0..<o).flatMap { r in conv2.data[(r * i) * 9..<(r * i + 4) * 9] })
        let pruned = try UNet2D(config: dense.config, weights: weights)
        XCTAssertLessThan(pruned.parameterCount, dense.parameterCount)
        XCTAssertNoThrow(try Evaluation.checkFits(pruned))
        let loss = try Evaluation.heldoutLoss(pruned, scheduler: SchedulerConfig(), perPrompt: 1)
        XCTAssertTrue(loss.loss.isFinite && loss.loss > 0)
        XCTAssertNotEqual(loss.loss, try Evaluation.heldoutLoss(dense, scheduler: SchedulerConfig(), perPrompt: 1).loss)
    }

    func testModelsThatDoNotFitTheWorldAreRefused() throws {
        let latent = try UNet2D(config: try config { $0["in_channels"] = 4; $0["out_channels"] = 4 }, randomSeed: 0)
        XCTAssertThrowsError(try Evaluation.checkFits(latent)) { XCTAssertEqual(($0 as? WorldModelMismatch)?.key, "in_channels") }
        let wide = try UNet2D(config: try config { $0["cross_attention_dim"] = 64 }, randomSeed: 0)
        XCTAssertThrowsError(try Evaluation.checkFits(wide)) { XCTAssertEqual(($0 as? WorldModelMismatch)?.key, "cross_attention_dim") }
    }
}
