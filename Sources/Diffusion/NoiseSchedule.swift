import Foundation
import TensorMath

/// The forward (noising) process: betas and their cumulative alpha products, computed in float32 the
/// way diffusers' DDPMScheduler/DDIMScheduler compute them so that values match to the last bits.
public struct NoiseSchedule: Sendable {
    public let config: SchedulerConfig
    /// beta_t for t in 0..<numTrainTimesteps.
    public let betas: [Float]
    /// prod_{s<=t} (1 - beta_s).
    public let alphasCumprod: [Float]

    public init(_ config: SchedulerConfig) {
        self.config = config
        let n = config.numTrainTimesteps
        var betas: [Float]
        switch config.betaSchedule {
        case .linear:
            betas = Self.torchLinspace(Float(config.betaStart), Float(config.betaEnd), n)
        case .scaledLinear:
            betas = Self.torchLinspace(Float(config.betaStart.squareRoot()), Float(config.betaEnd.squareRoot()), n)
                .map { $0 * $0 }
        case .squaredcosCapV2:
            // diffusers' betas_for_alpha_bar (cosine), in Python floats then cast to float32.
            func alphaBar(_ t: Double) -> Double {
                let c = cos((t + 0.008) / 1.008 * Double.pi / 2)
                return c * c
            }
            betas = (0..<n).map { i in
                Float(min(1 - alphaBar(Double(i + 1) / Double(n)) / alphaBar(Double(i) / Double(n)), 0.999))
            }
        }
        var cumprod = [Float](repeating: 0, count: n)
        var running: Float = 1
        for i in 0..<n {
            running *= (1 - betas[i])
            cumprod[i] = running
        }
        self.betas = betas
        self.alphasCumprod = cumprod
    }

    /// torch.linspace in float32: the first half counts up from `start`, the second down from `end`.
    static func torchLinspace(_ start: Float, _ end: Float, _ steps: Int) -> [Float] {
        guard steps > 1 else { return steps == 1 ? [start] : [] }
        let step = (end - start) / Float(steps - 1)
        let half = steps / 2
        return (0..<steps).map { i in i < half ? start + step * Float(i) : end - step * Float(steps - i - 1) }
    }

    /// sqrt(alphas_cumprod[t]) and sqrt(1 - alphas_cumprod[t]).
    public func coefficients(at t: Int) -> (signal: Float, noise: Float) {
        precondition(t >= 0 && t < alphasCumprod.count, "timestep \(t) outside 0..<\(alphasCumprod.count)")
        let a = alphasCumprod[t]
        return (a.squareRoot(), (1 - a).squareRoot())
    }

    /// x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) noise, one timestep per batch item (dim 0).
    public func addNoise(original: Tensor, noise: Tensor, timesteps: [Int]) -> Tensor {
        mix(original, noise, timesteps) { c in (c.signal, c.noise) }
    }

    /// v = sqrt(a_t) noise - sqrt(1 - a_t) x_0, one timestep per batch item.
    public func velocity(sample: Tensor, noise: Tensor, timesteps: [Int]) -> Tensor {
        mix(noise, sample, timesteps) { c in (c.signal, -c.noise) }
    }

    /// The training target for `predictionType`: the noise, the velocity, or the clean sample.
    public func target(_ prediction: PredictionType, original: Tensor, noise: Tensor, timesteps: [Int]) -> Tensor {
        switch prediction {
        case .epsilon: return noise
        case .vPrediction: return velocity(sample: original, noise: noise, timesteps: timesteps)
        case .sample: return original
        }
    }

    /// Per-item a*x + b*y with (a, b) from the timestep's coefficients.
    private func mix(_ x: Tensor, _ y: Tensor, _ timesteps: [Int],
                     _ weights: ((signal: Float, noise: Float)) -> (Float, Float)) -> Tensor {
        precondition(x.shape == y.shape && x.rank >= 1 && x.shape[0] == timesteps.count,
                     "shapes \(x.shape), \(y.shape) and \(timesteps.count) timesteps do not match")
        let per = x.count / max(1, x.shape[0])
        return Tensor(uninitializedShape: x.shape) { out in
            x.data.withUnsafeBufferPointer { px in
                y.data.withUnsafeBufferPointer { py in
                    for (b, t) in timesteps.enumerated() {
                        let (a, c) = weights(coefficients(at: t))
                        for i in b * per..<(b + 1) * per { out[i] = a * px[i] + c * py[i] }
                    }
                }
            }
        }
    }
}
