import Diffusion
import TensorMath

/// Accuracy of each detector on images whose truth is known.
public struct DetectorAccuracy: Equatable, Sendable {
    public var colour: Double
    public var shape: Double
    public var style: Double
    /// All three right at once: what `retain_accuracy` asks of a sample.
    public var all: Double
    public var images: Int

    /// The weakest single detector.
    public var minimum: Double { min(colour, shape, style) }
}

/// How ground-truth renders are spoiled to stand in for a model's imperfect samples.
public struct Degradation: Equatable, Sendable {
    /// Standard deviation of added Gaussian noise (values live in [-1, 1]).
    public var noise: Float
    /// A 3x3 binomial blur ([1, 2, 1] / 4 in each direction, edges replicated) before the noise.
    public var blur: Bool

    public init(noise: Float = 0, blur: Bool = false) {
        self.noise = noise
        self.blur = blur
    }

    public static let none = Degradation()

    public func apply(_ image: [Float], noise generator: inout NormalGenerator) -> [Float] {
        var out = blur ? Degradation.blurred(image) : image
        if noise > 0 {
            let n = generator.tensor([out.count])
            for i in out.indices { out[i] += noise * n.data[i] }
        }
        return out
    }

    static func blurred(_ image: [Float]) -> [Float] {
        let n = WorldSize.side
        func pass(_ src: [Float], horizontal: Bool) -> [Float] {
            var dst = src
            for c in 0..<WorldSize.channels {
                for y in 0..<n {
                    for x in 0..<n {
                        func at(_ d: Int) -> Float {
                            let (u, v) = horizontal ? (min(n - 1, max(0, x + d)), y) : (x, min(n - 1, max(0, y + d)))
                            return src[(c * n + v) * n + u]
                        }
                        dst[(c * n + y) * n + x] = (at(-1) + 2 * at(0) + at(1)) / 4
                    }
                }
            }
            return dst
        }
        return pass(pass(image, horizontal: true), horizontal: false)
    }
}

extension Detector {
    /// Runs the detectors on `perPrompt` fresh renders of every prompt from the validation stream
    /// (never used for training), optionally degraded.
    /// `world` picks the prompts and the shapes the detector may report (default: the original world).
    public static func validate(perPrompt: Int, degradation: Degradation = .none, seed: UInt64 = 0,
                                world: WorldConcept = .style) -> DetectorAccuracy {
        var generator = NormalGenerator(seed: seed)
        var right = (colour: 0, shape: 0, style: 0, all: 0)
        var total = 0
        for prompt in world.prompts {
            for k in 0..<perPrompt {
                let image = degradation.apply(Renderer.render(prompt, seed: seed, split: .validation, index: k), noise: &generator)
                let d = detect(image, shapes: world.shapes)
                total += 1
                if d.colour == prompt.colour { right.colour += 1 }
                if d.shape == prompt.shape { right.shape += 1 }
                if d.style == prompt.style { right.style += 1 }
                if d.matches(prompt) { right.all += 1 }
            }
        }
        let t = Double(max(total, 1))
        return DetectorAccuracy(colour: Double(right.colour) / t, shape: Double(right.shape) / t,
                                style: Double(right.style) / t, all: Double(right.all) / t, images: total)
    }
}
