import Diffusion
import Foundation
import TensorFormats
import TensorMath
import UNet

/// How `evaluate` samples.
public struct EvaluationSettings: Sendable {
    /// Samples per prompt.
    public var samples = 8
    /// DDIM steps (eta 0).
    public var steps = 20
    /// Classifier-free guidance scale with the world's empty prompt; 1 samples the conditional model alone.
    public var guidance: Float = 1
    /// Seed of the initial noise (the held-out loss does not depend on it).
    public var seed: UInt64 = 0
    /// Ground-truth renders per prompt for the detectors' accuracy.
    public var validationPerPrompt = 8
    /// Held-out renders per retain prompt; the CLI keeps the default so losses compare across runs.
    public var heldoutPerPrompt = Evaluation.heldoutPerPrompt
    /// Images per forward pass: bounds memory, not results.
    public var chunk = 96
    /// Which concepts count as forgotten: the prompts sampled, the forget rate's concepts, and the
    /// retain and held-out prompts (those showing none of them).
    public var concept: WorldConcept = .style

    public init() {}
}

/// Per-prompt outcome of the samples.
public struct PromptScore: Sendable {
    public var prompt: WorldPrompt
    public var samples: Int
    /// Samples showing the prompted colour, shape and style together.
    public var matches: Int
    /// Samples showing the forget style.
    public var forgetStyle: Int
    /// Samples showing a forget concept the prompt asks for (0 on retain prompts).
    public var forgetConcept: Int
}

/// The forget rate of one concept over the samples of the prompts that ask for it.
public struct ConceptRate: Sendable {
    public var concept: ForgetConcept
    public var rate: Double
    public var samples: Int
}

/// What `dmsurgery eval` reports (formats/concept-world.md lists the JSON keys).
public struct EvaluationReport: Sendable {
    /// Share of forget-prompt samples in which the detectors see a forget concept the prompt asks for
    /// (with `--concept style`: the samples read as the forget style).
    public var forgetRate: Double
    /// The forget rate of each chosen concept on its own.
    public var forgetRates: [ConceptRate]
    /// Share of retain-prompt samples with the prompted shape, colour and style.
    public var retainAccuracy: Double
    /// Denoising MSE on held-out retain renders at fixed noise and timesteps.
    public var heldoutLoss: Double
    /// Per-attribute accuracy on retain prompts.
    public var retainColour: Double, retainShape: Double, retainStyle: Double
    /// The attributes that are no forget concept (colour and shape for the style) right on forget
    /// prompts: whether removing the concept kept the content.
    public var forgetContent: Double
    public var forgetSamples: Int, retainSamples: Int, heldoutImages: Int
    /// How the forget-prompt samples read, by style name ("none" where no style was recognised): where
    /// the removed style went.
    public var forgetStyles: [(style: String, count: Int)]
    /// The same by shape name.
    public var forgetShapes: [(shape: String, count: Int)]
    public var detectorAccuracy: DetectorAccuracy
    public var prompts: [PromptScore]
    /// The samples [P * K, 3, 16, 16], prompt-major in the concept's prompt order (`WorldPrompt.all`
    /// for the style).
    public var images: Tensor
    public var seconds: Double
    public var settings: EvaluationSettings

    /// The accuracy every detector must reach on ground truth for the scores to be trusted.
    public static let requiredDetectorAccuracy = 0.95
    public var detectorsTrusted: Bool { detectorAccuracy.minimum >= EvaluationReport.requiredDetectorAccuracy }

    public var json: JSONValue {
        func number(_ x: Double) -> JSONValue { .number(x.isFinite ? String(format: "%.6g", x) : "null") }
        func int(_ n: Int) -> JSONValue { .number(String(n)) }
        let a = detectorAccuracy
        return .object([
            JSONMember("forget_rate", number(forgetRate)),
            JSONMember("retain_accuracy", number(retainAccuracy)),
            JSONMember("heldout_loss", number(heldoutLoss)),
            JSONMember("retain_colour_accuracy", number(retainColour)),
            JSONMember("retain_shape_accuracy", number(retainShape)),
            JSONMember("retain_style_accuracy", number(retainStyle)),
            JSONMember("forget_content_accuracy", number(forgetContent)),
            JSONMember("forget_samples", int(forgetSamples)),
            JSONMember("retain_samples", int(retainSamples)),
            JSONMember("heldout_images", int(heldoutImages)),
            JSONMember("forget_styles", .object(forgetStyles.map { JSONMember($0.style, int($0.count)) })),
            JSONMember("forget_shapes", .object(forgetShapes.map { JSONMember($0.shape, int($0.count)) })),
            JSONMember("concept", .string(settings.concept.rawValue)),
            JSONMember("forget_rates", .object(forgetRates.map { JSONMember($0.concept.rawValue, number($0.rate)) })),
            JSONMember("detector_accuracy", .object([
                JSONMember("colour", number(a.colour)), JSONMember("shape", number(a.shape)),
                JSONMember("style", number(a.style)), JSONMember("all", number(a.all)),
                JSONMember("images", int(a.images)),
            ])),
            JSONMember("detectors_trusted", .bool(detectorsTrusted)),
            JSONMember("samples_per_prompt", int(settings.samples)),
            JSONMember("steps", int(settings.steps)),
            JSONMember("guidance", number(Double(settings.guidance))),
            JSONMember("seed", .number(String(settings.seed))),
            JSONMember("seconds", number(seconds)),
            JSONMember("prompts", .array(prompts.map { p in
                .object([
                    JSONMember("text", .string(p.prompt.text)), JSONMember("forget", .bool(settings.concept.isForget(p.prompt))),
                    JSONMember("samples", int(p.samples)), JSONMember("matches", int(p.matches)),
                    JSONMember("forget_style", int(p.forgetStyle)), JSONMember("forget_concept", int(p.forgetConcept)),
                ])
            })),
        ])
    }
}

/// Why a model cannot be evaluated on the world.
public struct WorldModelMismatch: ToolError {
    /// The config key that does not fit.
    public var key: String
    public var reason: String
    /// The model's file, once the caller that opened it has set it.
    public var file: String?

    public init(key: String, message: String, file: String? = nil) {
        self.key = key
        self.reason = message
        self.file = file
    }

    public var code: ErrorCode { .worldMismatch }
    public var message: String { "\(key): \(reason)" }
    public var tensor: String? { nil }
    public var description: String { "\(key): \(reason)" }
}

extension ErrorCode {
    /// A model whose channels, context or depth do not fit the concept world (formats/concept-world.md).
    public static let worldMismatch = ErrorCode(rawValue: "world-mismatch")
}

public enum Evaluation {
    /// Seed of the held-out loss's noise: fixed so the loss compares across runs and `--seed`s.
    public static let heldoutNoiseSeed: UInt64 = 0x4845_4C44_4F55_5400
    /// Held-out renders per retain prompt (world seed 0, the held-out stream) of the reported loss.
    public static let heldoutPerPrompt = 8

    /// Refuses models whose input, output or context do not fit the world's images and prompts.
    public static func checkFits(_ unet: UNet2D) throws(WorldModelMismatch) {
        let c = unet.config
        guard c.inChannels == WorldSize.channels, c.outChannels == WorldSize.channels else {
            throw WorldModelMismatch(key: "in_channels", message: "the model maps \(c.inChannels) to \(c.outChannels) channels; the world's images have \(WorldSize.channels)")
        }
        guard unet.contextDim == WorldSize.embeddingDim else {
            throw WorldModelMismatch(key: "cross_attention_dim", message: "\(unet.contextDim.map(String.init) ?? "none (unconditional)"); the world's prompts embed in \(WorldSize.embeddingDim)")
        }
        guard WorldSize.side % c.downsampleFactor == 0 else {
            throw WorldModelMismatch(key: "block_out_channels", message: "\(c.downsampleFactor.trailingZeroBitCount) downsamplings do not divide the world's \(WorldSize.side)-pixel images")
        }
    }

    /// Samples every prompt, scores the samples, measures the held-out loss and the detectors.
    public static func evaluate(_ unet: UNet2D, scheduler: SchedulerConfig, settings: EvaluationSettings,
                                progress: (String, Int, Int) -> Void = { _, _, _ in }) throws -> EvaluationReport {
        let start = Date()
        let world = settings.concept
        let prompts = world.prompts
        let k = settings.samples
        let samples = try sample(unet, scheduler: scheduler, embeddings: prompts.map(\.embedding), settings: settings) {
            progress("sampling", $0, $1)
        }

        var scores: [PromptScore] = []
        var retain = (n: 0, colour: 0, shape: 0, style: 0, all: 0)
        var forget = (n: 0, shown: 0, content: 0)
        var perConcept = [ForgetConcept: (n: Int, shown: Int)]()
        var forgetStyles = [Int](repeating: 0, count: WorldStyle.allCases.count + 1)
        var forgetShapes = [Int](repeating: 0, count: world.shapes.count + 1)
        for (pi, prompt) in prompts.enumerated() {
            var score = PromptScore(prompt: prompt, samples: k, matches: 0, forgetStyle: 0, forgetConcept: 0)
            let asked = world.concepts.filter { $0.isAsked(by: prompt) }
            for j in 0..<k {
                let d = Detector.detect(samples.batch(pi * k + j, pi * k + j + 1).data, shapes: world.shapes)
                if d.matches(prompt) { score.matches += 1 }
                if d.style == WorldStyle.forget { score.forgetStyle += 1 }
                if asked.isEmpty {
                    retain.n += 1
                    if d.colour == prompt.colour { retain.colour += 1 }
                    if d.shape == prompt.shape { retain.shape += 1 }
                    if d.style == prompt.style { retain.style += 1 }
                    if d.matches(prompt) { retain.all += 1 }
                    continue
                }
                forget.n += 1
                if asked.contains(where: { $0.isShown(in: d) }) {
                    forget.shown += 1
                    score.forgetConcept += 1
                }
                for c in asked { perConcept[c, default: (0, 0)].n += 1; if c.isShown(in: d) { perConcept[c]!.shown += 1 } }
                forgetStyles[d.style.flatMap { WorldStyle.allCases.firstIndex(of: $0) } ?? WorldStyle.allCases.count] += 1
                forgetShapes[d.shape.flatMap { world.shapes.firstIndex(of: $0) } ?? world.shapes.count] += 1
                if d.colour == prompt.colour && (asked.contains(.object) || d.shape == prompt.shape)
                    && (asked.contains(.style) || d.style == prompt.style) { forget.content += 1 }
            }
            scores.append(score)
        }
        let (heldout, heldoutCount) = try heldoutLoss(unet, scheduler: scheduler, perPrompt: settings.heldoutPerPrompt,
                                                      chunk: settings.chunk, concept: world)
        progress("held-out loss", 1, 1)
        let accuracy = Detector.validate(perPrompt: settings.validationPerPrompt, world: world)
        return EvaluationReport(
            forgetRate: share(forget.shown, forget.n),
            forgetRates: world.concepts.map { c in ConceptRate(concept: c, rate: share(perConcept[c]?.shown ?? 0, perConcept[c]?.n ?? 0), samples: perConcept[c]?.n ?? 0) },
            retainAccuracy: share(retain.all, retain.n), heldoutLoss: heldout,
            retainColour: share(retain.colour, retain.n), retainShape: share(retain.shape, retain.n),
            retainStyle: share(retain.style, retain.n), forgetContent: share(forget.content, forget.n),
            forgetSamples: forget.n, retainSamples: retain.n, heldoutImages: heldoutCount,
            forgetStyles: zip(WorldStyle.allCases.map(\.rawValue) + ["none"], forgetStyles).map { ($0, $1) },
            forgetShapes: zip(world.shapes.map(\.rawValue) + ["none"], forgetShapes).map { ($0, $1) },
            detectorAccuracy: accuracy, prompts: scores, images: samples,
            seconds: Date().timeIntervalSince(start), settings: settings)
    }

    static func share(_ a: Int, _ b: Int) -> Double { b == 0 ? .nan : Double(a) / Double(b) }

    /// `settings.samples` DDIM samples of each prompt embedding ([S * D] values each), prompt-major, from
    /// noise seeded by `settings.seed`: the same noise for the same prompt position in every call.
    public static func sample(_ unet: UNet2D, scheduler: SchedulerConfig, embeddings: [[Float]], settings: EvaluationSettings,
                              progress: (Int, Int) -> Void = { _, _ in }) throws -> Tensor {
        let k = settings.samples
        let s = WorldSize.self
        let batch = MemoryBudget.product([embeddings.count, k]) ?? Int.max
        try unet.checkInput(batch: batch, height: s.side, width: s.side, training: false, option: "--samples")
        let uncond = Tensor(shape: [1, s.tokens, s.embeddingDim], data: Vocabulary.embed(Vocabulary.unconditionalTokens))
        var noise = NormalGenerator(seed: settings.seed)
        let initial = noise.tensor([embeddings.count * k, s.channels, s.side, s.side])
        let context = Tensor(shape: [embeddings.count * k, s.tokens, s.embeddingDim],
                             data: embeddings.flatMap { e in Array([[Float]](repeating: e, count: k).joined()) })
        let ddim = DDIMSampler(scheduler)
        var images: [Tensor] = []
        let total = initial.shape[0]
        for begin in stride(from: 0, to: total, by: settings.chunk) {
            let end = min(total, begin + settings.chunk)
            let x = initial.batch(begin, end), c = context.batch(begin, end)
            let n = end - begin
            let u = Tensor(shape: [n] + uncond.shape.dropFirst(), data: Array([[Float]](repeating: uncond.data, count: n).joined()))
            images.append(try ddim.sample(from: x, steps: settings.steps) { xt, t in
                let ts = [Float](repeating: Float(t), count: n)
                if settings.guidance == 1 { return try unet(sample: xt, timesteps: ts, encoderHiddenStates: c) }
                return try guidedPrediction(unet, sample: xt, timesteps: ts, unconditional: u, conditional: c, scale: settings.guidance)
            })
            progress(end, total)
        }
        return Tensor.joined(images)
    }

    /// Mean squared error of the model's prediction against the scheduler's target on the held-out
    /// renders, each noised at its own timestep from an even spread over the schedule, with noise from
    /// a fixed seed: the same images, noise and timesteps for every model and every run.
    /// `concept` picks the retain prompts whose held-out renders are scored.
    public static func heldoutLoss(_ unet: UNet2D, scheduler: SchedulerConfig, perPrompt: Int = heldoutPerPrompt,
                                   chunk: Int = 96, concept: WorldConcept = .style) throws -> (loss: Double, images: Int) {
        let data = WorldDataset(seed: 0, perPrompt: 1, heldoutPerPrompt: perPrompt, concept: concept).heldout
        let x0 = Tensor(shape: data.tensors[0].shape, data: data.tensors[0].values)
        let cond = Tensor(shape: data.tensors[1].shape, data: data.tensors[1].values)
        let count = x0.shape[0]
        var generator = NormalGenerator(seed: heldoutNoiseSeed)
        let noise = generator.tensor(x0.shape)
        let steps = scheduler.numTrainTimesteps
        let timesteps = (0..<count).map { (2 * $0 + 1) * steps / (2 * count) }
        let schedule = NoiseSchedule(scheduler)
        var sum = 0.0
        for begin in stride(from: 0, to: count, by: chunk) {
            let end = min(count, begin + chunk)
            let clean = x0.batch(begin, end), eps = noise.batch(begin, end), ts = Array(timesteps[begin..<end])
            let noisy = schedule.addNoise(original: clean, noise: eps, timesteps: ts)
            let target = schedule.target(scheduler.predictionType, original: clean, noise: eps, timesteps: ts)
            let prediction = try unet(sample: noisy, timesteps: ts.map(Float.init), encoderHiddenStates: cond.batch(begin, end))
            for i in 0..<prediction.count {
                let d = Double(prediction.data[i] - target.data[i])
                sum += d * d
            }
        }
        return (sum / Double(x0.count), count)
    }
}

extension Tensor {
    /// Items `begin..<end` along dim 0.
    func batch(_ begin: Int, _ end: Int) -> Tensor {
        let item = shape.dropFirst().reduce(1, *)
        return Tensor(shape: [end - begin] + shape.dropFirst(), data: Array(data[begin * item..<end * item]))
    }
}
