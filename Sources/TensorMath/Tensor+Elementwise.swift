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
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("tensor add", profileMark) }
        precondition(shape == other.shape, "shape mismatch \(shape) vs \(other.shape)")
        // A unit scale gives y + x rounded once however saxpy computes it (1·x is exact, with or without
        // FMA), so a large sum (gradients added into a model-sized buffer) is split over the cores with
        // the same bits; another scale keeps one call, whose rounding is OpenBLAS's kernel's.
        let n = count, parts = scale == 1 ? n : 0
        other.data.withUnsafeBufferPointer { po in
            data.withUnsafeMutableBufferPointer { pd in
                Parallel.forRanges(parts, grain: 1 << 18) { range in
                    cblas_saxpy(Int32(range.count), 1, po.baseAddress! + range.lowerBound, 1, pd.baseAddress! + range.lowerBound, 1)
                }
                if parts == 0 { cblas_saxpy(Int32(n), scale, po.baseAddress, 1, pd.baseAddress, 1) }
            }
        }
    }

    /// `self *= s` in place.
    public mutating func scale(by s: Float) {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("tensor scale", profileMark) }
        // Each element is x·s rounded once in any split, so large tensors (clipped gradients) use every core.
        data.withUnsafeMutableBufferPointer { pd in
            Parallel.forRanges(pd.count, grain: 1 << 18) { range in
                cblas_sscal(Int32(range.count), s, pd.baseAddress! + range.lowerBound, 1)
            }
        }
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
