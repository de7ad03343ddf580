import Foundation

/// Vectorized exp for the softmax and sigmoid loops: the C library's expf is a scalar call (~5 ns), which
/// made the exponentials, not the sgemms, the cost of multi-head attention.
enum VectorMath {
    typealias V = SIMD8<Float>

    /// e^x, 8 lanes at a time: Cephes' expf (range reduction by ln 2 in two parts and a degree-5
    /// polynomial), relative error within ~2 ulp of float32. Inputs are clamped to [-87.3, 88.7], so
    /// very negative arguments give ~1e-38 rather than 0.
    @inline(__always)
    static func exp(_ x: V) -> V {
        // Clamp with masks: the generic pointwiseMin/Max are not inlined.
        let lo = V(repeating: -87.33654), hi = V(repeating: 88.72283)
        let x = x.replacing(with: lo, where: x .< lo).replacing(with: hi, where: x .> hi)
        // Adding 1.5 * 2^23 rounds x log2(e) to the nearest integer n and leaves n in the low mantissa
        // bits: no float-to-int conversion, which Swift's generic SIMD lowers poorly.
        let magic = V(repeating: 12582912)
        let shifted = x * 1.44269504088896341 + magic
        let n = shifted - magic
        let r = x - n * 0.693359375 + n * 2.12194440e-4
        var p = V(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let y = p * r * r + r + 1
        let nBits = unsafeBitCast(shifted, to: SIMD8<UInt32>.self) &- unsafeBitCast(magic, to: SIMD8<UInt32>.self)
        let scale = (nBits &+ 127) &<< 23
        return y * unsafeBitCast(scale, to: V.self)
    }

    /// Scalar e^x with the same formula, for loop tails.
    @inline(__always)
    static func exp(_ x: Float) -> Float { exp(V(repeating: x))[0] }

    /// Replaces one row of `n` scores by exp(score - max) and returns the max and the sum of those
    /// exps: a softmax without its division, which the caller folds into a smaller tensor (attention
    /// scales its output rows instead of every probability).
    @inline(__always)
    static func shiftedExp(_ row: UnsafeMutablePointer<Float>, count n: Int) -> (max: Float, sum: Float) {
        var mv = V(repeating: -.infinity)
        var i = 0
        while i + 8 <= n {
            let v = UnsafeRawPointer(row + i).loadUnaligned(as: V.self)
            mv = mv.replacing(with: v, where: v .> mv)
            i += 8
        }
        var m = mv.max()
        while i < n {
            m = Swift.max(m, row[i])
            i += 1
        }
        var sv = V(repeating: 0)
        i = 0
        while i + 8 <= n {
            let e = exp(UnsafeRawPointer(row + i).loadUnaligned(as: V.self) - m)
            UnsafeMutableRawPointer(row + i).storeBytes(of: e, as: V.self)
            sv += e
            i += 8
        }
        var s = sv.sum()
        while i < n {
            row[i] = exp(row[i] - m)
            s += row[i]
            i += 1
        }
        return (m, s)
    }

    /// Sum of `n` floats. Swift keeps float additions in source order, so a plain loop never vectorizes;
    /// eight lane accumulators do (and round slightly differently from a sequential sum).
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, count n: Int) -> Float {
        var acc = V(repeating: 0)
        var i = 0
        while i + 8 <= n {
            acc += UnsafeRawPointer(p + i).loadUnaligned(as: V.self)
            i += 8
        }
        var s = acc.sum()
        while i < n {
            s += p[i]
            i += 1
        }
        return s
    }

    /// Sum of (p[i] - shift)^2.
    @inline(__always)
    static func sumOfSquares(_ p: UnsafePointer<Float>, count n: Int, shift: Float) -> Float {
        var acc = V(repeating: 0)
        var i = 0
        while i + 8 <= n {
            let d = UnsafeRawPointer(p + i).loadUnaligned(as: V.self) - shift
            acc += d * d
            i += 8
        }
        var s = acc.sum()
        while i < n {
            s += (p[i] - shift) * (p[i] - shift)
            i += 1
        }
        return s
    }

    /// (sum of a[i], sum of a[i] * (b[i] - shift)): the two reductions of a normalization's backward.
    @inline(__always)
    static func sumAndShiftedDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int,
                                 shift: Float) -> (Float, Float) {
        var s0 = V(repeating: 0), s1 = V(repeating: 0)
        var i = 0
        while i + 8 <= n {
            let va = UnsafeRawPointer(a + i).loadUnaligned(as: V.self)
            let vb = UnsafeRawPointer(b + i).loadUnaligned(as: V.self)
            s0 += va
            s1 += va * (vb - shift)
            i += 8
        }
        var r0 = s0.sum(), r1 = s1.sum()
        while i < n {
            r0 += a[i]
            r1 += a[i] * (b[i] - shift)
            i += 1
        }
        return (r0, r1)
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
