import TensorFormats
import TensorMath
import UNet

/// UCE's least-squares objective as a differentiable upper level (`unlearn --method uce`): over every
/// cross-attention key and value projection W of the student (P of them, W_0 its value when the phase
/// started),
///   L_UCE = (1/P) Σ_W (1/out_W)·[ e·Σ_i ‖W c_i − W_0 c*_i‖² + p·Σ_j ‖W c_j − W_0 c_j‖² + λ‖W − W_0‖²_F ],
/// whose minimiser is `ClosedFormEdit`'s W_0·R·M⁻¹. Its gradient, (2/(P·out_W))·[(W C − T)·diag(w)·Cᵀ
/// + λ(W − W_0)] with C = [c_k] and T = [W_0 c*_k] (c*_j = c_j for the preserved), reaches the
/// projections only and needs no UNet forward (formats/uce.md).
public struct ClosedFormObjective: Sendable {
    public let edit: ClosedFormEdit
    /// W_0 of each projection, by parameter name.
    public let base: [String: Tensor]
    /// The embeddings c_k (erased, then preserved) as rows [n, d], their weights w_k, and per projection
    /// the targets W_0 c*_k as [out, n].
    private let rows: [Double]
    private let weights: [Double]
    private let targets: [String: [Double]]

    public init(edit: ClosedFormEdit, base: [String: Tensor]) {
        self.edit = edit
        self.base = base
        let d = edit.width
        let concepts = edit.erase.map(\.concept) + edit.preserve
        let goals = edit.erase.map(\.target) + edit.preserve
        let n = concepts.count
        rows = concepts.flatMap { $0.map(Double.init) }
        weights = Array(repeating: Double(edit.eraseScale), count: edit.erase.count) + Array(repeating: Double(edit.preserveScale), count: edit.preserve.count)
        // Goals as columns [d, n]: T = W_0 · [c*_1 … c*_n].
        var goalColumns = [Double](repeating: 0, count: d * n)
        for (k, goal) in goals.enumerated() { for i in 0..<d { goalColumns[i * n + k] = Double(goal[i]) } }
        var targets: [String: [Double]] = [:]
        for (name, w) in base {
            targets[name] = LinearAlgebra.multiply(w.data.map(Double.init), goalColumns, m: w.shape[0], k: d, n: n)
        }
        self.targets = targets
    }

    /// L_UCE of `model`; adds `scale`·∂L_UCE/∂W into `gradients` for every projection.
    public func evaluate(_ model: UNet2D, scale: Float = 1, into gradients: inout [String: Tensor]) throws -> Float {
        let d = edit.width, n = weights.count, count = Double(base.count)
        var columns = [Double](repeating: 0, count: d * n)
        for k in 0..<n { for i in 0..<d { columns[i * n + k] = rows[k * d + i] } }
        let lambda = Double(edit.lambda)
        var total = 0.0
        for name in base.keys.sorted() {
            guard let w = model.parameters[name], let w0 = base[name], w.shape == w0.shape, let target = targets[name] else {
                throw UNetError(.missingParameter, name, "the UCE upper level's projection is not a float32 parameter of the student")
            }
            let out = w.shape[0], norm = 1 / (count * Double(out))
            let weight = w.data.map(Double.init)
            // Residuals (W C − T) [out, n], weighted by w_k.
            var residual = LinearAlgebra.multiply(weight, columns, m: out, k: d, n: n)
            var loss = 0.0
            for o in 0..<out {
                for k in 0..<n {
                    let r = residual[o * n + k] - target[o * n + k]
                    loss += weights[k] * r * r
                    residual[o * n + k] = weights[k] * r
                }
            }
            // ∂/∂W = 2·norm·[(W C − T)·diag(w)·Cᵀ + λ(W − W_0)].
            var gradient = LinearAlgebra.multiply(residual, rows, m: out, k: n, n: d)
            for i in 0..<gradient.count {
                let drift = weight[i] - Double(w0.data[i])
                loss += lambda * drift * drift
                gradient[i] = 2 * norm * (gradient[i] + lambda * drift) * Double(scale)
            }
            total += norm * loss
            let g = Tensor(shape: w.shape, data: gradient.map(Float.init))
            if var existing = gradients[name] {
                existing.add(g, scaledBy: 1)
                gradients[name] = existing
            } else {
                gradients[name] = g
            }
        }
        return Float(total)
    }
}
