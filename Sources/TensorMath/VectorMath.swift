import Foundation

/// Vector loops. The ones whose speed depends on the instruction set forward to the process's kernel set
/// (`KernelSet`, Sources/TensorKernels); the closure-taking `apply` helpers stay here, compiled for the
/// baseline CPU, for the light elementwise work.
enum VectorMath {
    typealias V = SIMD8<Float>

    static var kernels: VectorKernels { VectorKernels.active }

    /// Replaces one row of `n` scores by exp(score - max) and returns the max and the sum of those exps.
    @inline(__always)
    static func shiftedExp(_ row: UnsafeMutablePointer<Float>, count n: Int) -> (max: Float, sum: Float) {
        kernels.shiftedExp(row, n)
    }

    /// Sum of `n` floats in lane accumulators (rounds slightly differently from a sequential sum).
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, count n: Int) -> Float { kernels.sum(p, n) }

    /// Sum of (p[i] - shift)^2.
    @inline(__always)
    static func sumOfSquares(_ p: UnsafePointer<Float>, count n: Int, shift: Float) -> Float {
        kernels.sumOfSquares(p, n, shift)
    }

    /// (sum of a[i], sum of a[i] * (b[i] - shift)): the two reductions of a normalization's backward.
    @inline(__always)
    static func sumAndShiftedDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int,
                                 shift: Float) -> (Float, Float) {
        kernels.sumAndShiftedDot(a, b, n, shift)
    }

    /// Applies `f` to `count` elements from `src` into `dst` (which may alias `src`), 8 lanes at a time.
    @inline(__always)
    static func apply(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, count n: Int,
                      _ f: (V) -> V) {
        var i = 0
        while i + 8 <= n {
            let v = UnsafeRawPointer(src + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: f(v), as: V.self)
            i += 8
        }
        if i < n {
            var tail = V(repeating: 0)
            for j in i..<n { tail[j - i] = src[j] }
            let r = f(tail)
            for j in i..<n { dst[j] = r[j - i] }
        }
    }

    /// Applies `f` to corresponding elements of `a` and `b` into `dst`, 8 lanes at a time.
    @inline(__always)
    static func apply(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
                      count n: Int, _ f: (V, V) -> V) {
        var i = 0
        while i + 8 <= n {
            let va = UnsafeRawPointer(a + i).loadUnaligned(as: V.self)
            let vb = UnsafeRawPointer(b + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: f(va, vb), as: V.self)
            i += 8
        }
        if i < n {
            var ta = V(repeating: 0), tb = V(repeating: 0)
            for j in i..<n {
                ta[j - i] = a[j]
                tb[j - i] = b[j]
            }
            let r = f(ta, tb)
            for j in i..<n { dst[j] = r[j - i] }
        }
    }
}
