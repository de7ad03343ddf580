import Diffusion
import TensorMath
import UNet

/// A held-out measure of the lower level taken during training (`--heldout FILE --heldout-every N`):
/// the plain denoising MSE of the student on every item of a data file, each noised once at a
/// timestep and with noise drawn from a fixed seed. Fixed noise makes the values of one run's steps
/// and of different runs comparable (the curve of distillation against bilevel), and the probe draws
/// from its own generator, so the weights of a run are the same with or without it.
public struct HeldoutProbe: Sendable {
    /// Every item of the file, noised once.
    public let batch: NoisedBatch
    /// Measured after every `every`-th iteration and after the last one.
    public let every: Int
    /// Items per forward pass (bounds the memory of one measurement).
    public var chunk = 64
    /// Seed of the probe's timesteps and noise, apart from the run's `--seed`.
    public static let seed: UInt64 = 0x4845_4C44_5052_4F42

    /// `data` needs x0 (and cond for a conditional model); `every` is at least 1.
    public init(data: TrainingData, schedule: NoiseSchedule, every: Int) {
        precondition(every >= 1 && data.x0 != nil, "HeldoutProbe needs x0 and every >= 1")
        let x0 = data.x0!
        var rng = TrainingRandom(seed: Self.seed)
        let n = x0.shape[0]
        let timesteps = rng.integers(n, below: schedule.config.numTrainTimesteps)
        let noise = rng.tensor(x0.shape)
        batch = NoisedBatch(sample: schedule.addNoise(original: x0, noise: noise, timesteps: timesteps), timesteps: timesteps,
                            cond: data.cond, target: schedule.target(schedule.config.predictionType, original: x0, noise: noise,
                                                                     timesteps: timesteps),
                            textTime: data.textTime(Array(0..<n)))
        self.every = every
    }

    /// Whether the probe measures after iteration `step` (1-based) of `total`.
    public func measures(after step: Int, of total: Int) -> Bool { step % every == 0 || step == total }

    /// Mean squared error of `model`'s prediction against the scheduler's target over all items.
    public func loss(_ model: UNet2D) throws -> Double {
        let n = batch.timesteps.count
        var sum = 0.0
        var start = 0
        while start < n {
            let part = batch.slice(start..<min(n, start + chunk))
            let out = try model.forward(sample: part.sample, timesteps: part.timestepValues, encoderHiddenStates: part.cond,
                                        textTime: part.textTime, recording: false).output.sample
            for (p, t) in zip(out.data, part.target.data) {
                let d = Double(p) - Double(t)
                sum += d * d
            }
            start += chunk
        }
        return sum / Double(max(1, batch.target.count))
    }
}
