import Diffusion
import Foundation
import TensorFormats
import TensorMath
import UNet

/// Prompts that reach a forgotten concept by another road (issue 14 §4).
public enum AttackKind: String, CaseIterable, Sendable {
    /// Each forget concept's token replaced by its paraphrase token (`Paraphrase`), never trained on.
    case paraphrase
    /// Each forget concept's token slot replaced by an embedding optimised through the frozen model
    /// (`AdversarialEmbedding`), in the spirit of UnlearnDiffAtk.
    case adversarial
}

/// How the adversarial attack optimises (formats/concept-world.md, "Robustness").
public struct AttackSettings: Sendable {
    /// Adam steps on the concept slots.
    public var steps = 60
    /// Radius of the L2 ball around the concept token's embedding that each optimised slot stays in
    /// (the table's rows have norm about 3.3).
    public var radius: Float = 1.5
    public var learningRate: Float = 0.05
    /// Target images per forget prompt (drawn by the teacher, else ground-truth renders).
    public var imagesPerPrompt = 4
    /// DDIM steps and guidance of the teacher's target images (the demo's evaluation settings: stronger
    /// guidance draws images the teacher itself denoises worse than its training renders).
    public var imageSteps = 20
    public var imageGuidance: Float = 2
    /// Seed of the target images, the timesteps and the noise of the optimisation.
    public var seed: UInt64 = 0

    public init() {}

    /// The largest values the options may take: bounds on work, not on memory (the batch is checked).
    public static let maximumSteps = 10_000
    public static let maximumImagesPerPrompt = 256
}

/// What one attack did to the forget rate.
public struct AttackReport: Sendable {
    public var kind: AttackKind
    /// Share of the attacked forget-prompt samples showing a forget concept the prompt asks for.
    public var forgetRate: Double
    public var forgetRates: [ConceptRate]
    public var samples: Int
    /// Paraphrase: each concept's paraphrase token and its cosine similarity with the concept's.
    public var paraphrases: [Paraphrase]
    /// Adversarial: the denoising loss on the target images (fixed noise and timesteps) at the concept
    /// tokens' own embeddings and at the optimised ones, and the mean distance moved.
    public var lossBefore: Double?
    public var lossAfter: Double?
    public var meanShift: Double?
    public var attack: AttackSettings?
    /// Where the targets came from: "teacher" or "renders".
    public var targets: String?
    public var seconds: Double

    public var json: JSONValue {
        func number(_ x: Double) -> JSONValue { .number(x.isFinite ? String(format: "%.6g", x) : "null") }
        var members = [
            JSONMember("forget_rate", number(forgetRate)),
            JSONMember("forget_rates", .object(forgetRates.map { JSONMember($0.concept.rawValue, number($0.rate)) })),
            JSONMember("forget_samples", .number(String(samples))),
        ]
        if kind == .paraphrase {
            members.append(JSONMember("tokens", .object(paraphrases.map { p in
                JSONMember(p.concept.rawValue, .object([JSONMember("token", .string(p.token)), JSONMember("of", .string(p.concept.token)),
                                                         JSONMember("cosine", number(p.cosine))]))
            })))
        }
        if let lossBefore, let lossAfter, let meanShift, let a = attack, let targets {
            members += [
                JSONMember("loss_before", number(lossBefore)), JSONMember("loss_after", number(lossAfter)),
                JSONMember("mean_shift", number(meanShift)), JSONMember("steps", .number(String(a.steps))),
                JSONMember("radius", number(Double(a.radius))), JSONMember("lr", number(Double(a.learningRate))),
                JSONMember("images_per_prompt", .number(String(a.imagesPerPrompt))), JSONMember("targets", .string(targets)),
            ]
        }
        members.append(JSONMember("seconds", number(seconds)))
        return .object(members)
    }
}

public enum Attack {
    /// The forget prompts' embeddings with every chosen concept the prompt asks for in its slot replaced
    /// by `replacement(concept, prompt index)`.
    static func embeddings(_ world: WorldConcept, replacement: (ForgetConcept, Int) -> [Float]) -> [[Float]] {
        let d = WorldSize.embeddingDim
        return world.forget.enumerated().map { i, prompt in
            var e = prompt.embedding
            for c in world.concepts where c.isAsked(by: prompt) {
                e.replaceSubrange(c.slot * d..<(c.slot + 1) * d, with: replacement(c, i))
            }
            return e
        }
    }

    /// Samples the forget prompts as the evaluation does, with the given embeddings, and scores them.
    static func score(_ unet: UNet2D, scheduler: SchedulerConfig, world: WorldConcept, embeddings: [[Float]],
                      settings: EvaluationSettings) throws -> (rate: Double, rates: [ConceptRate], samples: Int) {
        let images = try Evaluation.sample(unet, scheduler: scheduler, embeddings: embeddings, settings: settings)
        let k = settings.samples
        var shown = 0, n = 0
        var perConcept = [ForgetConcept: (n: Int, shown: Int)]()
        for (pi, prompt) in world.forget.enumerated() {
            let asked = world.concepts.filter { $0.isAsked(by: prompt) }
            for j in 0..<k {
                let d = Detector.detect(images.batch(pi * k + j, pi * k + j + 1).data, shapes: world.shapes)
                n += 1
                if asked.contains(where: { $0.isShown(in: d) }) { shown += 1 }
                for c in asked { perConcept[c, default: (0, 0)].n += 1; if c.isShown(in: d) { perConcept[c]!.shown += 1 } }
            }
        }
        let rates = world.concepts.map { c in
            ConceptRate(concept: c, rate: Evaluation.share(perConcept[c]?.shown ?? 0, perConcept[c]?.n ?? 0), samples: perConcept[c]?.n ?? 0)
        }
        return (Evaluation.share(shown, n), rates, n)
    }

    /// The forget rate when the prompts use the paraphrase tokens instead of the concepts' own.
    public static func paraphrase(_ unet: UNet2D, scheduler: SchedulerConfig, settings: EvaluationSettings) throws -> AttackReport {
        let start = Date()
        let world = settings.concept
        let e = embeddings(world) { c, _ in Vocabulary.embedding(of: c.paraphrase.token) }
        let (rate, rates, n) = try score(unet, scheduler: scheduler, world: world, embeddings: e, settings: settings)
        return AttackReport(kind: .paraphrase, forgetRate: rate, forgetRates: rates, samples: n,
                            paraphrases: world.concepts.map(\.paraphrase), seconds: Date().timeIntervalSince(start))
    }

    /// Optimises the concept slots of the forget prompts (`AdversarialEmbedding`) and measures the
    /// forget rate with the optimised embeddings. `teacher` draws the target images; without one the
    /// targets are ground-truth renders of the forget prompts (what the teacher was trained on).
    public static func adversarial(_ unet: UNet2D, scheduler: SchedulerConfig, settings: EvaluationSettings,
                                   attack: AttackSettings, teacher: UNet2D?) throws -> AttackReport {
        let start = Date()
        let world = settings.concept
        let targets = try AdversarialEmbedding.targets(world: world, teacher: teacher, scheduler: scheduler, attack: attack)
        var optimiser = AdversarialEmbedding(world: world, targets: targets, settings: attack)
        let before = try optimiser.loss(unet, scheduler: scheduler)
        try optimiser.optimise(unet, scheduler: scheduler)
        let after = try optimiser.loss(unet, scheduler: scheduler)
        let e = embeddings(world) { c, i in optimiser.embedding(prompt: i, concept: c) }
        let (rate, rates, n) = try score(unet, scheduler: scheduler, world: world, embeddings: e, settings: settings)
        return AttackReport(kind: .adversarial, forgetRate: rate, forgetRates: rates, samples: n, paraphrases: [],
                            lossBefore: before, lossAfter: after, meanShift: optimiser.meanShift, attack: attack,
                            targets: teacher == nil ? "renders" : "teacher", seconds: Date().timeIntervalSince(start))
    }
}
