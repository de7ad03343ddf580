import CBLAS

/// Elementwise arithmetic and reductions. Shapes must match exactly (no broadcasting) except where a
/// function says otherwise; see `NN.addChannelBias` for the one broadcast the UNets need.
extension Tensor {
    public static func + (a: Tensor, b: Tensor) -> Tensor { NN.zipMap(a, b) { $0 + $1 } }

    public static func - (a: Tensor, b: Tensor) -> Tensor { NN.zipMap(a, b) { $0 - $1 } }

    /// Elementwise (Hadamard) product.
    public static func * (a: Tensor, b: Tensor) -> Tensor { NN.zipMap(a, b) { $0 * $1 } }

    public static func * (a: Tensor, s: Float) -> Tensor { NN.map(a) { $0 * s } }

    public static func * (s: Float, a: Tensor) -> Tensor { a * s }

    /// `self += scale * other` (BLAS saxpy); shapes must match.
    public mutating func add(_ other: Tensor, scaledBy scale: Float = 1) {
        precondition(shape == other.shape, "shape mismatch \(shape) vs \(other.shape)")
        let n = Int32(count)
        other.data.withUnsafeBufferPointer { po in
            data.withUnsafeMutableBufferPointer { pd in
                cblas_saxpy(n, scale, po.baseAddress, 1, pd.baseAddress, 1)
            }
        }
    }

    /// `self *= s` in place.
    public mutating func scale(by s: Float) {
        let n = Int32(count)
        data.withUnsafeMutableBufferPointer { pd in cblas_sscal(n, s, pd.baseAddress, 1) }
    }

    /// Sum of all elements, accumulated in Double.
    public func sum() -> Double {
        data.withUnsafeBufferPointer { p in
            var s = 0.0
            for v in p { s += Double(v) }
            return s
        }
    }

    /// Largest absolute element (0 for an empty tensor).
    public func maxAbs() -> Float {
        data.withUnsafeBufferPointer { p in p.reduce(0) { Swift.max($0, abs($1)) } }
    }
}
