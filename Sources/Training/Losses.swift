import Diffusion
import TensorMath
import UNet

/// The losses of the paper's two levels. Each returns its value and its gradient with respect to what
/// the student produced (output and block outputs), so that one UNet backward composes any weighted
/// sum of them (`UNet2D.backward(_:outputGradient:blockGradients:accumulatingInto:)`).
public enum Losses {
    /// Min-SNR-gamma weights (Hang et al. 2023), as diffusers' train_text_to_image.py computes them:
    /// min(SNR_t, gamma) / SNR_t for epsilon targets and min(SNR_t, gamma) / (SNR_t + 1) for v targets,
    /// SNR_t = alpha_bar_t / (1 - alpha_bar_t). Sample targets are weighted min(SNR_t, gamma).
    public static func minSNRWeights(timesteps: [Int], schedule: NoiseSchedule, gamma: Float) -> [Float] {
        timesteps.map { t in
            let a = schedule.alphasCumprod[t]
            let snr = a / (1 - a)
            let clipped = min(snr, gamma)
            switch schedule.config.predictionType {
            case .epsilon: return clipped / snr
            case .vPrediction: return clipped / (snr + 1)
            case .sample: return clipped
            }
        }
    }

    /// L_diff: MSE of the prediction against the scheduler's target, per-sample min-SNR weighted when
    /// `minSNRGamma` is set.
    public static func diffusion(prediction: Tensor, target: Tensor, timesteps: [Int], schedule: NoiseSchedule,
                                 minSNRGamma: Float?) -> (loss: Float, gradient: Tensor) {
        let weights = minSNRGamma.map { minSNRWeights(timesteps: timesteps, schedule: schedule, gamma: $0) }
        return NN.mseLoss(prediction, target, sampleWeights: weights)
    }

    /// L_outKD: MSE between the student's and the teacher's outputs.
    public static func outputDistillation(student: Tensor, teacher: Tensor) -> (loss: Float, gradient: Tensor) {
        NN.mseLoss(student, teacher)
    }

    /// L_featKD: the mean over every aligned pair of block outputs (down blocks, mid, up blocks;
    /// `BlockAlignment`) of the MSE between the student's and the teacher's. Pruning keeps block widths,
    /// so no projections are needed; a student without any aligned block has L_featKD = 0.
    public static func featureDistillation(student: [(BlockOutput, Tensor)], teacher: [(BlockOutput, Tensor)])
        -> (loss: Float, gradients: [BlockOutput: Tensor]) {
        let pairs = BlockAlignment.pairs(student: student, teacher: teacher)
        guard !pairs.isEmpty else { return (0, [:]) }
        let students = Dictionary(student.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
        let teachers = Dictionary(teacher.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
        let scale = 1 / Float(pairs.count)
        var loss: Float = 0
        var gradients: [BlockOutput: Tensor] = [:]
        for (id, match) in pairs {
            var (l, g) = NN.mseLoss(students[id]!, teachers[match]!)
            g.scale(by: scale)
            loss += l * scale
            gradients[id] = g
        }
        return (loss, gradients)
    }
}
