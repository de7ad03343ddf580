import TensorMath
import UNet

/// Unified Concept Editing (Gandikota et al. 2024, eq. 7 of arXiv:2308.14761, as the authors'
/// trainscripts/uce_sd_erase.py computes it): every cross-attention key and value projection W (out×d,
/// d the text width) is replaced by the minimiser of
///   e·Σ_i ‖W c_i − W_old c*_i‖² + p·Σ_j ‖W c_j − W_old c_j‖² + λ‖W − W_old‖²_F,
/// c_i an erased concept's token embedding, c*_i its target's, c_j a preserved one, which is
///   W = W_old·R·M⁻¹,  R = λI + e·Σ_i c*_i c_iᵀ + p·Σ_j c_j c_jᵀ,  M = λI + e·Σ_i c_i c_iᵀ + p·Σ_j c_j c_jᵀ.
/// (The authors write the left factor as λW_old + e·Σ v*_i c_iᵀ + p·Σ W_old c_j c_jᵀ with v*_i = W_old c*_i;
/// it is W_old·R.) R and M depend on the embeddings only, so K = R·M⁻¹ (d×d) is solved once, in float64
/// by Cholesky (M is symmetric positive definite for λ > 0), and each projection costs one product W_old·K.
/// formats/uce.md documents the equations, the token selection and the defaults.
public struct ClosedFormEdit: Sendable {
    /// The authors' defaults (uce_sd_erase.py's argparse): erase and preserve scales 1, λ 0.5.
    public enum Default {
        public static let eraseScale: Float = 1
        public static let preserveScale: Float = 1
        public static let lambda: Float = 0.5
    }

    /// One erased token embedding and the target embedding it is mapped to.
    public struct Pair: Sendable, Equatable {
        public var concept: [Float]
        public var target: [Float]
        public init(concept: [Float], target: [Float]) {
            self.concept = concept
            self.target = target
        }
    }

    public var width: Int
    public var erase: [Pair]
    public var preserve: [[Float]]
    public var eraseScale = Default.eraseScale
    public var preserveScale = Default.preserveScale
    public var lambda = Default.lambda

    public init(width: Int, erase: [Pair], preserve: [[Float]]) {
        self.width = width
        self.erase = erase
        self.preserve = preserve
    }

    /// K = R·M⁻¹ (d×d, row-major), the right factor every projection is multiplied by.
    public func transform() throws(LinearAlgebra.Failure) -> [Double] {
        let d = width
        var r = [Double](repeating: 0, count: d * d), m = r
        for i in 0..<d {
            r[i * d + i] = Double(lambda)
            m[i * d + i] = Double(lambda)
        }
        func accumulate(_ into: inout [Double], _ left: [Float], _ right: [Float], _ scale: Double) {
            for i in 0..<d {
                let a = scale * Double(left[i])
                if a == 0 { continue }
                for j in 0..<d { into[i * d + j] += a * Double(right[j]) }
            }
        }
        let e = Double(eraseScale), p = Double(preserveScale)
        for pair in erase {
            accumulate(&r, pair.target, pair.concept, e)
            accumulate(&m, pair.concept, pair.concept, e)
        }
        for c in preserve {
            accumulate(&r, c, c, p)
            accumulate(&m, c, c, p)
        }
        return try LinearAlgebra.solveRight(r, byPositiveDefinite: m, n: d)
    }

    /// W·K for a projection W [out, d].
    public static func apply(_ weight: Tensor, _ k: [Double]) -> Tensor {
        let out = weight.shape[0], d = weight.shape[1]
        let product = LinearAlgebra.multiply(weight.data.map(Double.init), k, m: out, k: d, n: d)
        return Tensor(shape: weight.shape, data: product.map(Float.init))
    }

    /// Whether `name` is a weight UCE edits: a cross-attention (`attn2`) key or value projection.
    public static func isProjection(_ name: String) -> Bool {
        name.hasSuffix(".attn2.to_k.weight") || name.hasSuffix(".attn2.to_v.weight")
    }

    /// Replaces every cross-attention key and value projection of `model` by W·K; returns their names,
    /// sorted. The projections read the text width d; a width-pruned student's have fewer rows.
    @discardableResult
    public static func edit(_ model: inout UNet2D, transform k: [Double], width d: Int) throws -> [String] {
        let names = model.parameters.keys.filter(isProjection).sorted()
        for name in names {
            let weight = model.parameters[name]!
            guard weight.shape.count == 2, weight.shape[1] == d else {
                throw UNetError(.badShape, name, "shape \(weight.shape): a cross-attention projection reads the text width \(d)")
            }
            try model.setParameter(name, apply(weight, k))
        }
        return names
    }
}
