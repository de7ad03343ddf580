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
        XCTAssertEqual(attack.slots.count, 9 + 12, "one slot per (prompt, concept it asks for): 3 prompts ask for both")
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
        XCTAssertEqual(paraphrase.forgetRates.map(\.samples), [9, 12])
        XCTAssertEqual(paraphrase.paraphrases.map(\.token), ["stripy", "plus"])
        let adversarial = try Attack.adversarial(unet, scheduler: SchedulerConfig(), settings: e, attack: a, teacher: nil)
        XCTAssertEqual(adversarial.targets, "renders")
        let json = JSONWriter.compact(adversarial.json)
        for key in ["forget_rate", "forget_rates", "loss_before", "loss_after", "mean_shift", "steps", "radius", "targets"] {
            XCTAssertTrue(json.contains("\"\(key)\""), key)
        }
    }

    /// The teacher with its cross-attention keys and values edited so that the `stripes` embedding e
    /// acts as e + d (d orthogonal to e, |d| = 2): a model that stopped answering the token but keeps
    /// the concept (the token e - d still reaches it, inside the attack's ball). The attack must lower
    /// its loss on the stripes renders and bring stripes back into its samples.
    func testAttackRecoversAConceptThatIsOnlyHiddenFromItsToken() throws {
        let folder = fixture("fixtures/teacher")
        let checkpoint = try loadFolder(folder)
        var hidden = checkpoint.unet
        let e = Vocabulary.embedding(of: "stripes"), f = Vocabulary.embedding(of: "flat")
        let ee = e.reduce(0) { $0 + $1 * $1 }
        let along = zip(f, e).reduce(0) { $0 + $1.0 * $1.1 } / ee
        var d = zip(f, e).map { $0 - along * $1 }
        let norm = d.reduce(0) { $0 + $1 * $1 }.squareRoot()
        d = d.map { 2 * $0 / norm }
        hidden.updateParameters { name, w in
            guard name.hasSuffix("attn2.to_k.weight") || name.hasSuffix("attn2.to_v.weight") else { return }
            // W' = W (I + d e^T / |e|^2): W' e = W (e + d).
            let (rows, cols) = (w.shape[0], w.shape[1])
            for r in 0..<rows {
                let wd = (0..<cols).reduce(Float(0)) { $0 + w.data[r * cols + $1] * d[$1] }
                for c in 0..<cols { w.data[r * cols + c] += wd * e[c] / ee }
            }
        }
        var settings = EvaluationSettings()
        settings.samples = 2
        settings.steps = 10
        settings.guidance = 2
        var attack = AttackSettings()
        attack.imagesPerPrompt = 1
        attack.steps = 40
        attack.radius = 2.5
        attack.learningRate = 0.1
        let clean = try Attack.score(hidden, scheduler: checkpoint.scheduler, world: .style,
                                     embeddings: WorldPrompt.forget.map(\.embedding), settings: settings)
        let report = try Attack.adversarial(hidden, scheduler: checkpoint.scheduler, settings: settings, attack: attack, teacher: nil)
        print("hidden stripes: clean forget rate \(clean.rate), attacked \(report.forgetRate), loss \(report.lossBefore!) -> \(report.lossAfter!)")
        XCTAssertLessThan(report.lossAfter!, 0.9 * report.lossBefore!)
        XCTAssertGreaterThan(report.forgetRate, clean.rate + 0.2)
    }

    private func loadFolder(_ folder: String) throws -> (unet: UNet2D, scheduler: SchedulerConfig) {
        let unet = try UNet2D(checkpoint: try Checkpoint.open(folder + "/diffusion_pytorch_model.safetensors"))
        let scheduler = try SchedulerConfig(json: try String(contentsOfFile: folder + "/scheduler_config.json", encoding: .utf8))
        return (unet, scheduler)
    }
}
