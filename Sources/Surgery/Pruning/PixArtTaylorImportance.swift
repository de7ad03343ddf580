import Diffusion
import TensorFormats
import TensorMath
import UNet

/// Diff-Pruning's Taylor importance (`TaylorImportance`) for a PixArt transformer: |w * dL/dw| summed over
/// a unit's entries, dL/dw accumulated over timesteps t = 0, 1, ... with one fixed noise draw, stopping
/// after the first step whose loss falls under `stopFraction` of the largest. The condition is the
/// caption (`context`, with its mask), and L is the MSE on the predicted-noise half of a learned-sigma
/// output (the other half gets no gradient), as PixArt's training takes its epsilon loss.
public struct PixArtTaylorImportance: ImportanceCriterion {
    /// Clean latents [N, C, H, W].
    public var x0: Tensor
    /// Caption embeddings [N, T, caption width] and their mask [N, T] (nil: all kept).
    public var context: Tensor
    public var mask: Tensor?
    public var schedule: NoiseSchedule
    public var seed: UInt64
    /// Timesteps visited: t = k * T / steps for k = 0..<steps.
    public var steps: Int
    public var stopFraction: Double = 0.05
    /// Called after each step with (step, timestep, loss).
    public var progress: ((Int, Int, Float) -> Void)?

    public init(x0: Tensor, context: Tensor, mask: Tensor?, schedule: NoiseSchedule, seed: UInt64, steps: Int) {
        self.x0 = x0
        self.context = context
        self.mask = mask
        self.schedule = schedule
        self.seed = seed
        self.steps = steps
    }

    public var name: String { "taylor" }

    public func scores(_ units: PruningUnits, checkpoint: Checkpoint) throws -> [[Double]] {
        let model = try PixArtTransformer(checkpoint: checkpoint)
        let channels = model.config.inChannels
        guard x0.rank == 4, x0.shape[1] == channels else {
            throw UNetError(.badInput, "x0", "shape \(x0.shape), expected [N, \(channels), H, W]")
        }
        let gradients = try taylorGradients(x0: x0, schedule: schedule, seed: seed, steps: steps, stopFraction: stopFraction,
                                            progress: progress) { noisy, timesteps, target, gradients in
            let (out, tape) = try model.forward(sample: noisy, timesteps: timesteps, encoderHiddenStates: context,
                                                encoderAttentionMask: mask, recording: true)
            let (loss, gradient) = NN.mseLoss(Self.leading(out, channels: channels), target)
            let g = model.backward(tape!, outputGradient: Self.padded(gradient, to: out.shape), parameterGradients: true)
            for (name, value) in g.parameters {
                if gradients[name] == nil { gradients[name] = value } else { gradients[name]!.add(value) }
            }
            return loss
        }
        return taylorSums(units, parameters: model.parameters, gradients: gradients)
    }

    /// The first `channels` channels of [B, C', H, W].
    static func leading(_ x: Tensor, channels: Int) -> Tensor {
        let (b, c, hw) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        guard c > channels else { return x }
        var out = [Float]()
        out.reserveCapacity(b * channels * hw)
        for item in 0..<b { out.append(contentsOf: x.data[(item * c * hw)..<(item * c * hw + channels * hw)]) }
        return Tensor(shape: [b, channels, x.shape[2], x.shape[3]], data: out)
    }

    /// `g` [B, C, H, W] placed in the first C channels of zeros of `shape` [B, C', H, W].
    static func padded(_ g: Tensor, to shape: [Int]) -> Tensor {
        guard shape != g.shape else { return g }
        let (b, c, hw) = (g.shape[0], g.shape[1], g.shape[2] * g.shape[3])
        var out = Tensor(zeros: shape)
        for item in 0..<b {
            for i in 0..<(c * hw) { out.data[item * shape[1] * hw + i] = g.data[item * c * hw + i] }
        }
        return out
    }
}
