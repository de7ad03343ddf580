extension NN {
    /// Mean squared error, `F.mse_loss(prediction, target)` (mean over all elements), and its gradient
    /// with respect to `prediction`. With `sampleWeights` ([B], one per leading index) the loss is
    /// mean_b(w_b * mean over sample b's elements), the min-SNR weighting diffusion trainers use; with
    /// all weights 1 it equals the plain mean.
    public static func mseLoss(_ prediction: Tensor, _ target: Tensor,
                               sampleWeights: [Float]? = nil) -> (loss: Float, gradient: Tensor) {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("mse", profileMark) }
        precondition(prediction.shape == target.shape, "mseLoss: \(prediction.shape) vs \(target.shape)")
        let b = prediction.rank == 0 ? 1 : prediction.shape[0]
        let per = prediction.count / Swift.max(1, b)
        if let sampleWeights { precondition(sampleWeights.count == b, "mseLoss: \(sampleWeights.count) weights for batch \(b)") }
        var loss: Double = 0
        let grad = Tensor(uninitializedShape: prediction.shape) { g in
            prediction.data.withUnsafeBufferPointer { pp in
            target.data.withUnsafeBufferPointer { pt in
                for s in 0..<b {
                    let w = sampleWeights?[s] ?? 1
                    let coef = 2 * w / Float(b * per)
                    var acc: Double = 0
                    for i in (s * per)..<((s + 1) * per) {
                        let d = pp[i] - pt[i]
                        acc += Double(d * d)
                        g[i] = coef * d
                    }
                    loss += Double(w) * acc / Double(per)
                }
            }
            }
        }
        return (Float(loss / Double(b)), grad)
    }
}
