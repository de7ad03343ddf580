import Diffusion
import Foundation
import TensorMath
import UNet

/// A small adversarial prompt attack in the spirit of UnlearnDiffAtk (Zhang et al., 2024): the
/// embedding in each forget prompt's concept slot is optimised, the model frozen, to minimise the
/// model's denoising loss on images that show the concept,
///
///     min_{|delta| <= r}  E_{t, eps} | f(sqrt(a_t) x + sqrt(1 - a_t) eps, t, c(e + delta)) - target |^2,
///
/// with Adam and a projection onto the L2 ball after every step. A model that only stopped answering
/// the concept's token, but still holds the concept, denoises those images well again once the slot
/// moves a little: its loss falls and its samples show the concept. UnlearnDiffAtk searches discrete
/// tokens; the world's "text encoder" is a table, so the search here is over the slot's vector.
public struct AdversarialEmbedding: Sendable {
    public let world: WorldConcept
    /// [P * m, 3, 16, 16]: m target images per forget prompt, prompt-major in `world.forget` order.
    public let targets: Tensor
    public let settings: AttackSettings
    /// The variables: one offset per (forget prompt, concept the prompt asks for).
    public let slots: [(prompt: Int, concept: ForgetConcept)]
    public internal(set) var offsets: [[Float]]

    public init(world: WorldConcept, targets: Tensor, settings: AttackSettings) {
        precondition(targets.shape[0] == world.forget.count * settings.imagesPerPrompt, "one target block per forget prompt")
        self.world = world
        self.targets = targets
        self.settings = settings
        let slots = world.forget.enumerated().flatMap { i, p in
            world.concepts.filter { $0.isAsked(by: p) }.map { (prompt: i, concept: $0) }
        }
        self.slots = slots
        offsets = slots.map { _ in [Float](repeating: 0, count: WorldSize.embeddingDim) }
    }

    /// The target images: the teacher's samples of each forget prompt (DDIM with guidance, noise from
    /// the attack's seed, clamped to [-1, 1]), or ground-truth renders (train stream of world seed 0)
    /// without a teacher.
    public static func targets(world: WorldConcept, teacher: UNet2D?, scheduler: SchedulerConfig, attack: AttackSettings) throws -> Tensor {
        let m = attack.imagesPerPrompt
        guard let teacher else {
            let images = world.forget.flatMap { p in (0..<m).flatMap { Renderer.render(p, seed: 0, split: .train, index: $0) } }
            return Tensor(shape: [world.forget.count * m, WorldSize.channels, WorldSize.side, WorldSize.side], data: images)
        }
        var s = EvaluationSettings()
        s.samples = m
        s.steps = attack.imageSteps
        s.guidance = attack.imageGuidance
        s.seed = attack.seed ^ 0x4154_5441_434B_0001
        var images = try Evaluation.sample(teacher, scheduler: scheduler, embeddings: world.forget.map(\.embedding), settings: s)
        // Pixels, as a picture of the concept would hold them: guided samples overshoot [-1, 1].
        for i in images.data.indices { images.data[i] = min(1, max(-1, images.data[i])) }
        return images
    }

    /// The optimised embedding of `concept` in forget prompt `prompt`.
    public func embedding(prompt: Int, concept: ForgetConcept) -> [Float] {
        let base = Vocabulary.embedding(of: concept.token)
        guard let k = slots.firstIndex(where: { $0.prompt == prompt && $0.concept == concept }) else { return base }
        return zip(base, offsets[k]).map { $0 + $1 }
    }

    /// Mean L2 norm of the offsets.
    public var meanShift: Double {
        offsets.map { o in Double(o.reduce(0) { $0 + $1 * $1 }.squareRoot()) }.reduce(0, +) / Double(max(1, offsets.count))
    }

    /// Encoder states [P * m, S, D] of the target images' prompts with the current offsets.
    func context() -> Tensor {
        let m = settings.imagesPerPrompt
        let rows = Attack.embeddings(world) { c, i in embedding(prompt: i, concept: c) }
        return Tensor(shape: [rows.count * m, WorldSize.tokens, WorldSize.embeddingDim],
                      data: rows.flatMap { e in Array([[Float]](repeating: e, count: m).joined()) })
    }

    /// The denoising loss at the current offsets on fixed noise and timesteps (an even spread over the
    /// schedule, noise from a seed of its own): the number that says whether the attack worked.
    public func loss(_ unet: UNet2D, scheduler: SchedulerConfig) throws -> Double {
        let count = targets.shape[0], steps = scheduler.numTrainTimesteps
        var generator = NormalGenerator(seed: settings.seed ^ 0x4C4F_5353_0000_0001)
        let noise = generator.tensor(targets.shape)
        let ts = (0..<count).map { (2 * $0 + 1) * steps / (2 * count) }
        return try lossAndGradient(unet, scheduler: scheduler, timesteps: ts, noise: noise, gradient: false).loss
    }

    /// `settings.steps` Adam steps (betas 0.9, 0.999) on the offsets, each on fresh timesteps and noise,
    /// each followed by the projection onto the ball of radius `settings.radius`.
    public mutating func optimise(_ unet: UNet2D, scheduler: SchedulerConfig) throws {
        var generator = NormalGenerator(seed: settings.seed ^ 0x4144_414D_0000_0001)
        let (b1, b2, eps): (Float, Float, Float) = (0.9, 0.999, 1e-8)
        var m1 = offsets.map { $0.map { _ in Float(0) } }, m2 = m1
        guard settings.steps > 0 else { return }
        for step in 1...settings.steps {
            let ts = generator.integers(targets.shape[0], below: scheduler.numTrainTimesteps)
            let noise = generator.tensor(targets.shape)
            let grads = try lossAndGradient(unet, scheduler: scheduler, timesteps: ts, noise: noise, gradient: true).slots
            let c1 = 1 - pow(b1, Float(step)), c2 = 1 - pow(b2, Float(step))
            for k in offsets.indices {
                for j in offsets[k].indices {
                    let g = grads[k][j]
                    m1[k][j] = b1 * m1[k][j] + (1 - b1) * g
                    m2[k][j] = b2 * m2[k][j] + (1 - b2) * g * g
                    offsets[k][j] -= settings.learningRate * (m1[k][j] / c1) / ((m2[k][j] / c2).squareRoot() + eps)
                }
                let norm = offsets[k].reduce(0) { $0 + $1 * $1 }.squareRoot()
                if norm > settings.radius { offsets[k] = offsets[k].map { $0 * settings.radius / norm } }
            }
        }
    }

    /// Mean squared error against the scheduler's target and, with `gradient`, its gradient with
    /// respect to each offset: the context gradient of the frozen model, summed over the images of the
    /// offset's prompt at the offset's slot.
    func lossAndGradient(_ unet: UNet2D, scheduler: SchedulerConfig, timesteps: [Int], noise: Tensor,
                         gradient: Bool) throws -> (loss: Double, slots: [[Float]]) {
        let schedule = NoiseSchedule(scheduler)
        let noisy = schedule.addNoise(original: targets, noise: noise, timesteps: timesteps)
        let target = schedule.target(scheduler.predictionType, original: targets, noise: noise, timesteps: timesteps)
        let context = context()
        let (output, tape) = try unet.forward(sample: noisy, timesteps: timesteps.map(Float.init), encoderHiddenStates: context,
                                              recording: gradient)
        let prediction = output.sample
        var sum = 0.0
        var dOut = [Float](repeating: 0, count: prediction.count)
        let scale = 2 / Float(prediction.count)
        for i in 0..<prediction.count {
            let d = prediction.data[i] - target.data[i]
            sum += Double(d) * Double(d)
            dOut[i] = scale * d
        }
        let loss = sum / Double(prediction.count)
        guard gradient, let tape else { return (loss, []) }
        let grads = unet.backward(tape, outputGradient: Tensor(shape: prediction.shape, data: dOut), parameterGradients: false)
        guard let dContext = grads.encoderHiddenStates else { return (loss, offsets.map { $0.map { _ in 0 } }) }
        let m = settings.imagesPerPrompt, d = WorldSize.embeddingDim, row = WorldSize.tokens * d
        let slotGrads = slots.map { slot in
            (0..<d).map { j in
                (0..<m).reduce(Float(0)) { acc, image in acc + dContext.data[(slot.prompt * m + image) * row + slot.concept.slot * d + j] }
            }
        }
        return (loss, slotGrads)
    }
}
