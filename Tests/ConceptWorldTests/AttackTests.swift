@testable import ConceptWorld
import Diffusion
import Foundation
import TensorFormats
import TensorMath
import UNet
import XCTest

/// The robustness attacks (formats/concept-world.md, "Robustness").
final class AttackTests: XCTestCase {
    private func fixture(_ path: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(path).path
    }

    private func tinyModel(seed: UInt64) throws -> UNet2D {
        let json = try String(contentsOfFile: fixture("fixtures/concept-world/tiny-unet-config.json"), encoding: .utf8)
        return try UNet2D(config: try UNetConfig(json: json), randomSeed: seed)
    }

    private func quickSettings(_ concept: WorldConcept) -> (EvaluationSettings, AttackSettings) {
        var e = EvaluationSettings()
        e.samples = 1
        e.steps = 2
        e.concept = concept
        var a = AttackSettings()
        a.imagesPerPrompt = 1
        a.steps = 3
        return (e, a)
    }

    func testContextGradientOfTheAttackLossMatchesFiniteDifferences() throws {
        let unet = try tinyModel(seed: 5)
        var settings = AttackSettings()
        settings.imagesPerPrompt = 1
        let targets = try AdversarialEmbedding.targets(world: .both, teacher: nil, scheduler: SchedulerConfig(), attack: settings)
        var attack = AdversarialEmbedding(world: .both, targets: targets, settings: settings)
        XCTAssertEqual(attack.slots.count, 12 + 12, "one slot per (prompt, concept it asks for): the 3 striped crosses ask for both")
        var generator = NormalGenerator(seed: 1)
        let noise = generator.tensor(targets.shape)
        let ts = (0..<targets.shape[0]).map { 50 + 40 * $0 }
        let (_, grads) = try attack.lossAndGradient(unet, scheduler: SchedulerConfig(), timesteps: ts, noise: noise, gradient: true)
        // Two slots of different kinds, two coordinates each, central differences in Double-ish steps.
        for k in [0, attack.slots.count - 1] {
            for j in [3, 17] {
                let h: Float = 1e-2
                attack.offsets[k][j] = h
                let up = try attack.lossAndGradient(unet, scheduler: SchedulerConfig(), timesteps: ts, noise: noise, gradient: false).loss
                attack.offsets[k][j] = -h
                let down = try attack.lossAndGradient(unet, scheduler: SchedulerConfig(), timesteps: ts, noise: noise, gradient: false).loss
                attack.offsets[k][j] = 0
                let numeric = (up - down) / Double(2 * h)
                XCTAssertEqual(Double(grads[k][j]), numeric, accuracy: 0.05 * abs(numeric) + 1e-6, "slot \(k) (\(attack.slots[k].concept)) value \(j)")
            }
        }
    }

    func testOptimisationLowersTheLossAndStaysInTheBall() throws {
        let unet = try tinyModel(seed: 6)
        var settings = AttackSettings()
        settings.imagesPerPrompt = 2
        settings.steps = 15
        settings.radius = 0.5
        settings.learningRate = 0.1
        let targets = try AdversarialEmbedding.targets(world: .style, teacher: nil, scheduler: SchedulerConfig(), attack: settings)
        var attack = AdversarialEmbedding(world: .style, targets: targets, settings: settings)
        let before = try attack.loss(unet, scheduler: SchedulerConfig())
        try attack.optimise(unet, scheduler: SchedulerConfig())
        let after = try attack.loss(unet, scheduler: SchedulerConfig())
        XCTAssertLessThan(after, before)
        XCTAssertTrue(attack.offsets.allSatisfy { $0.reduce(0) { $0 + $1 * $1 }.squareRoot() <= 0.5 + 1e-5 })
        XCTAssertGreaterThan(attack.meanShift, 0.1, "the offsets moved")
        XCTAssertNotEqual(attack.embedding(prompt: 0, concept: .style), Vocabulary.embedding(of: "stripes"))
    }

    func testAttackReportsCarryTheirFieldsAndCounts() throws {
        let unet = try tinyModel(seed: 7)
        let (e, a) = quickSettings(.both)
        let paraphrase = try Attack.paraphrase(unet, scheduler: SchedulerConfig(), settings: e)
        XCTAssertEqual(paraphrase.samples, 21)
        XCTAssertEqual(paraphrase.forgetRates.map(\.concept), [.style, .object])
        XCTAssertEqual(paraphrase.forgetRates.map(\.samples), [12, 12], "the 3 striped crosses count for both concepts")
        XCTAssertEqual(paraphrase.paraphrases.map(\.token), ["stripy", "plus"])
        let adversarial = try Attack.adversarial(unet, scheduler: SchedulerConfig(), settings: e, attack: a, teacher: nil)
        XCTAssertEqual(adversarial.targets, "renders")
        let json = JSONWriter.compact(adversarial.json)
        for key in ["forget_rate", "forget_rates", "loss_before", "loss_after", "mean_shift", "steps", "radius", "targets"] {
            XCTAssertTrue(json.contains("\"\(key)\""), key)
        }
    }
}
