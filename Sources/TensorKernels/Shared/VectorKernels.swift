// The vector loops whose speed depends on the instruction set. This one source is compiled three times
// (Sources/TensorKernels/{AVX512,AVX2,Portable}/, each holding a symlink to this file and a
// Namespace.swift that names the enum `Impl` extends and the lane width `V`), once per `-target-cpu`;
// TensorMath's `KernelSet` picks one copy at run time. Code here must not assume a lane count.

extension Impl {
    /// e^x on every lane: Cephes' expf (range reduction by ln 2 in two parts and a degree-5 polynomial),
    /// relative error within ~2 ulp of float32. Inputs are clamped to [-87.3, 88.7], so very negative
    /// arguments give ~1e-38 rather than 0.
    @inline(__always)
    static func exp(_ x: V) -> V {
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
        let nBits = unsafeBitCast(shifted, to: VU.self) &- unsafeBitCast(magic, to: VU.self)
        let scale = (nBits &+ 127) &<< 23
        return y * unsafeBitCast(scale, to: V.self)
    }

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }

    /// The first `n` (< lane count) floats at `p` in a vector, zeros after.
    @inline(__always) static func loadTail(_ p: UnsafePointer<Float>, _ n: Int) -> V {
        var v = V(repeating: 0)
        for j in 0..<n { v[j] = p[j] }
        return v
    }

    @inline(__always) static func storeTail(_ v: V, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
        for j in 0..<n { p[j] = v[j] }
    }

    /// dst[i] = f(src[i]) for n elements (dst may alias src).
    @inline(__always)
    static func map(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ f: (V) -> V) {
        var i = 0
        while i + V.scalarCount <= n {
            store(f(load(src + i)), dst + i)
            i += V.scalarCount
        }
        if i < n { storeTail(f(loadTail(src + i, n - i)), dst + i, n - i) }
    }

    /// dst[i] = f(a[i], b[i]) for n elements (dst may alias a or b).
    @inline(__always)
    static func map(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int,
                    _ f: (V, V) -> V) {
        var i = 0
        while i + V.scalarCount <= n {
            store(f(load(a + i), load(b + i)), dst + i)
            i += V.scalarCount
        }
        if i < n { storeTail(f(loadTail(a + i, n - i), loadTail(b + i, n - i)), dst + i, n - i) }
    }

    /// Replaces one row of `n` scores by exp(score - max) and returns the max and the sum of those exps:
    /// a softmax without its division (attention scales its output rows instead of every probability).
    public static func shiftedExp(_ row: UnsafeMutablePointer<Float>, count n: Int) -> (max: Float, sum: Float) {
        var mv = V(repeating: -.infinity)
        var i = 0
        while i + V.scalarCount <= n {
            let v = load(row + i)
            mv = mv.replacing(with: v, where: v .> mv)
            i += V.scalarCount
        }
        var m = mv.max()
        for j in i..<n { m = Swift.max(m, row[j]) }
        var sv = V(repeating: 0)
        i = 0
        while i + V.scalarCount <= n {
            let e = exp(load(row + i) - m)
            store(e, row + i)
            sv += e
            i += V.scalarCount
        }
        var s = sv.sum()
        if i < n {
            let e = exp(loadTail(row + i, n - i) - m)
            for j in 0..<(n - i) {
                row[i + j] = e[j]
                s += e[j]
            }
        }
        return (m, s)
    }

    /// row[i] = exp(row[i] - shift): probabilities again from scores and a row's log-sum-exp.
    public static func expShifted(_ row: UnsafeMutablePointer<Float>, count n: Int, shift: Float) {
        map(row, row, n) { exp($0 - shift) }
    }

    /// dp[i] = p[i] * (dp[i] - dot): the softmax backward of one row, dot = sum(p * dp).
    public static func softmaxBackward(_ p: UnsafePointer<Float>, _ dp: UnsafeMutablePointer<Float>, count n: Int,
                                       dot: Float) {
        map(p, dp, dp, n) { pv, dv in pv * (dv - dot) }
    }

    /// dst = silu(src) = src * sigmoid(src).
    public static func silu(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, count n: Int) {
        map(src, dst, n) { v in v / (1 + exp(-v)) }
    }

    /// dst = dy * silu'(x) = dy * s * (1 + x (1 - s)), s = sigmoid(x).
    public static func siluBackward(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                    _ dst: UnsafeMutablePointer<Float>, count n: Int) {
        map(dy, x, dst, n) { g, v in
            let s = 1 / (1 + exp(-v))
            return g * s * (1 + v * (1 - s))
        }
    }

    /// dst = src * scale + shift (a normalization's per-channel affine step).
    public static func affine(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, count n: Int,
                              scale: Float, shift: Float) {
        map(src, dst, n) { $0 * scale + shift }
    }

    /// dst = silu(src * scale + shift): GroupNorm's affine step and the SiLU after it in one pass.
    public static func affineSiLU(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, count n: Int,
                                  scale: Float, shift: Float) {
        map(src, dst, n) { v in
            let z = v * scale + shift
            return z / (1 + exp(-z))
        }
    }

    /// dst = a * d - c - b * x: the input gradient of a normalization from its per-set coefficients.
    public static func normInputGradient(_ d: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                         _ dst: UnsafeMutablePointer<Float>, count n: Int, a: Float, b: Float, c: Float) {
        map(d, x, dst, n) { dv, xv in a * dv - c - b * xv }
    }

    /// Sum of n floats in lane accumulators (Swift keeps float additions in source order, so a plain loop
    /// never vectorizes; this rounds slightly differently from a sequential sum).
    public static func sum(_ p: UnsafePointer<Float>, count n: Int) -> Float {
        var acc = V(repeating: 0)
        var i = 0
        while i + V.scalarCount <= n {
            acc += load(p + i)
            i += V.scalarCount
        }
        var s = acc.sum()
        for j in i..<n { s += p[j] }
        return s
    }

    /// Sum of (p[i] - shift)^2.
    public static func sumOfSquares(_ p: UnsafePointer<Float>, count n: Int, shift: Float) -> Float {
        var acc = V(repeating: 0)
        var i = 0
        while i + V.scalarCount <= n {
            let d = load(p + i) - shift
            acc += d * d
            i += V.scalarCount
        }
        var s = acc.sum()
        for j in i..<n { s += (p[j] - shift) * (p[j] - shift) }
        return s
    }

    /// (sum of a[i], sum of a[i] * (b[i] - shift)): the two reductions of a normalization's backward.
    public static func sumAndShiftedDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int,
                                        shift: Float) -> (Float, Float) {
        var s0 = V(repeating: 0), s1 = V(repeating: 0)
        var i = 0
        while i + V.scalarCount <= n {
            let va = load(a + i)
            s0 += va
            s1 += va * (load(b + i) - shift)
            i += V.scalarCount
        }
        var r0 = s0.sum(), r1 = s1.sum()
        for j in i..<n {
            r0 += a[j]
            r1 += a[j] * (b[j] - shift)
        }
        return (r0, r1)
    }
}

extension Impl {
    /// erf on every lane: Abramowitz & Stegun 7.1.26 (the form ATen's vectorized erf uses), absolute
    /// error below 1.5e-7 plus the ~2 ulp of `exp`.
    @inline(__always)
    static func erf(_ x: V) -> V {
        let a = x.replacing(with: -x, where: x .< 0)
        let t = 1 / (a * 0.3275911 + 1)
        var p = V(repeating: 1.061405429)
        p = p * t - 1.453152027
        p = p * t + 1.421413741
        p = p * t - 0.284496736
        p = p * t + 0.254829592
        let r = 1 - p * t * exp(-a * a)
        return r.replacing(with: -r, where: x .< 0)
    }

    /// GELU, exact (erf) form: 0.5 x (1 + erf(x / sqrt 2)).
    @inline(__always)
    static func gelu(_ x: V) -> V { 0.5 * x * (1 + erf(x * 0.70710678118654752)) }

    /// GELU's derivative: 0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi).
    @inline(__always)
    static func geluDerivative(_ x: V) -> V {
        0.5 * (1 + erf(x * 0.70710678118654752)) + x * exp(-0.5 * x * x) * 0.39894228040143268
    }

    /// dst = gelu(src).
    public static func gelu(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, count n: Int) {
        map(src, dst, n) { gelu($0) }
    }

    /// dst = dy * gelu'(x).
    public static func geluBackward(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                    _ dst: UnsafeMutablePointer<Float>, count n: Int) {
        map(dy, x, dst, n) { g, v in g * geluDerivative(v) }
    }

    /// GEGLU's gate on one row: dst = hidden * gelu(gate).
    public static func geglu(_ hidden: UnsafePointer<Float>, _ gate: UnsafePointer<Float>,
                             _ dst: UnsafeMutablePointer<Float>, count n: Int) {
        map(hidden, gate, dst, n) { h, g in h * gelu(g) }
    }

    /// GEGLU's backward on one row: dHidden = dy * gelu(gate), dGate = dy * hidden * gelu'(gate).
    public static func gegluBackward(_ dy: UnsafePointer<Float>, _ hidden: UnsafePointer<Float>,
                                     _ gate: UnsafePointer<Float>, _ dHidden: UnsafeMutablePointer<Float>,
                                     _ dGate: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        while i + V.scalarCount <= n {
            let d = load(dy + i), g = load(gate + i)
            store(d * gelu(g), dHidden + i)
            store(d * load(hidden + i) * geluDerivative(g), dGate + i)
            i += V.scalarCount
        }
        if i < n {
            let d = loadTail(dy + i, n - i), g = loadTail(gate + i, n - i)
            storeTail(d * gelu(g), dHidden + i, n - i)
            storeTail(d * loadTail(hidden + i, n - i) * geluDerivative(g), dGate + i, n - i)
        }
    }

    /// One AdamW step over n elements (torch.optim.AdamW, the caller's bias corrections): p *= decay;
    /// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= stepSize m / (sqrt(v) / bc2Sqrt + eps).
    public static func adamW(_ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>,
                             _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>, count n: Int,
                             decay: Float, beta1: Float, beta2: Float, stepSize: Float, bc2Sqrt: Float, eps: Float) {
        @inline(__always) func update(_ p: V, _ g: V, _ m: V, _ v: V) -> (V, V, V) {
            let m1 = beta1 * m + (1 - beta1) * g
            let v1 = beta2 * v + (1 - beta2) * g * g
            let denom = v1.squareRoot() / bc2Sqrt + eps
            return (p * decay - stepSize * m1 / denom, m1, v1)
        }
        var i = 0
        while i + V.scalarCount <= n {
            let (p1, m1, v1) = update(load(p + i), load(g + i), load(m + i), load(v + i))
            store(p1, p + i)
            store(m1, m + i)
            store(v1, v + i)
            i += V.scalarCount
        }
        if i < n {
            let k = n - i
            let (p1, m1, v1) = update(loadTail(p + i, k), loadTail(g + i, k), loadTail(m + i, k), loadTail(v + i, k))
            storeTail(p1, p + i, k)
            storeTail(m1, m + i, k)
            storeTail(v1, v + i, k)
        }
    }
}
