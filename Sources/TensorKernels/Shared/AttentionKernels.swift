// The fused attention forward's two products, register-blocked for this copy's lane width: scores of a
// block of query rows against packed keys, and the probabilities times packed values. NN.attention
// packs K^T and V of one head once (`attentionKeyStride`/`attentionValueStride` wide, zero-padded),
// then runs blocks of query rows through scores -> softmax -> values while the block's scores stay in
// the core's L2 (no Sq x Sk matrix, no sgemm packing of the scores). Code here must not assume a lane
// count.

extension Impl {
    /// Columns per register block: three vectors.
    @inline(__always) static var attentionChunk: Int { 3 * V.scalarCount }

    /// The lane count of this copy.
    public static var lanes: Int { V.scalarCount }

    /// The padded width of packed keys (and of a score row) for `keys` keys: a multiple of three vectors.
    public static func attentionKeyStride(_ keys: Int) -> Int { (keys + attentionChunk - 1) / attentionChunk * attentionChunk }

    /// s[r * kp + j] = scale * sum_c q[r * qStride + c] * kt[c * kp + j] for r < rows, j < kp, where kt is
    /// K^T of one head packed as [depth, kp] (kp = `attentionKeyStride`, padding zeros).
    public static func attentionScores(_ q: UnsafePointer<Float>, qStride: Int, rows: Int, _ kt: UnsafePointer<Float>,
                                       keyStride kp: Int, depth d: Int, scale: Float,
                                       into s: UnsafeMutablePointer<Float>) {
        let l = V.scalarCount
        let sv = V(repeating: scale)
        var j = 0
        while j < kp {
            var r = 0
            while r < rows {
                // Four rows at a time; a short last group repeats its first row and stores only its own.
                let n = Swift.min(4, rows - r)
                let q0 = q + r * qStride
                let q1 = n > 1 ? q0 + qStride : q0, q2 = n > 2 ? q0 + 2 * qStride : q0, q3 = n > 3 ? q0 + 3 * qStride : q0
                let z = V(repeating: 0)
                var a00 = z, a01 = z, a02 = z, a10 = z, a11 = z, a12 = z
                var a20 = z, a21 = z, a22 = z, a30 = z, a31 = z, a32 = z
                var k = kt + j
                for c in 0..<d {
                    let k0 = load(k), k1 = load(k + l), k2 = load(k + 2 * l)
                    let b0 = V(repeating: q0[c]), b1 = V(repeating: q1[c])
                    a00 = fma(b0, k0, a00); a01 = fma(b0, k1, a01); a02 = fma(b0, k2, a02)
                    a10 = fma(b1, k0, a10); a11 = fma(b1, k1, a11); a12 = fma(b1, k2, a12)
                    let b2 = V(repeating: q2[c]), b3 = V(repeating: q3[c])
                    a20 = fma(b2, k0, a20); a21 = fma(b2, k1, a21); a22 = fma(b2, k2, a22)
                    a30 = fma(b3, k0, a30); a31 = fma(b3, k1, a31); a32 = fma(b3, k2, a32)
                    k += kp
                }
                let s0 = s + r * kp + j
                store(a00 * sv, s0); store(a01 * sv, s0 + l); store(a02 * sv, s0 + 2 * l)
                if n > 1 { store(a10 * sv, s0 + kp); store(a11 * sv, s0 + kp + l); store(a12 * sv, s0 + kp + 2 * l) }
                if n > 2 {
                    let s2 = s0 + 2 * kp
                    store(a20 * sv, s2); store(a21 * sv, s2 + l); store(a22 * sv, s2 + 2 * l)
                }
                if n > 3 {
                    let s3 = s0 + 3 * kp
                    store(a30 * sv, s3); store(a31 * sv, s3 + l); store(a32 * sv, s3 + 2 * l)
                }
                r += 4
            }
            j += 3 * l
        }
    }

    /// o[r * oStride + c] = inverse[r] * sum_j p[r * kp + j] * vp[j * vStride + c] for r < rows, j < keys,
    /// c < width, where vp is V of one head packed as [keys, vStride] (vStride = `attentionKeyStride(width)`,
    /// padding zeros) and p the unnormalized probabilities of the block's rows (stride kp).
    public static func attentionValues(_ p: UnsafePointer<Float>, probabilityStride kp: Int, rows: Int, keys: Int,
                                       _ vp: UnsafePointer<Float>, valueStride vs: Int, width: Int,
                                       inverse: UnsafePointer<Float>, into o: UnsafeMutablePointer<Float>,
                                       outputStride os: Int) {
        let l = V.scalarCount
        var r = 0
        while r < rows {
            let n = Swift.min(4, rows - r)
            let p0 = p + r * kp
            let p1 = n > 1 ? p0 + kp : p0, p2 = n > 2 ? p0 + 2 * kp : p0, p3 = n > 3 ? p0 + 3 * kp : p0
            var c0 = 0
            while c0 < width {
                let z = V(repeating: 0)
                var a00 = z, a01 = z, a02 = z, a10 = z, a11 = z, a12 = z
                var a20 = z, a21 = z, a22 = z, a30 = z, a31 = z, a32 = z
                var v = vp + c0
                for j in 0..<keys {
                    let v0 = load(v), v1 = load(v + l), v2 = load(v + 2 * l)
                    let b0 = V(repeating: p0[j]), b1 = V(repeating: p1[j])
                    a00 = fma(b0, v0, a00); a01 = fma(b0, v1, a01); a02 = fma(b0, v2, a02)
                    a10 = fma(b1, v0, a10); a11 = fma(b1, v1, a11); a12 = fma(b1, v2, a12)
                    let b2 = V(repeating: p2[j]), b3 = V(repeating: p3[j])
                    a20 = fma(b2, v0, a20); a21 = fma(b2, v1, a21); a22 = fma(b2, v2, a22)
                    a30 = fma(b3, v0, a30); a31 = fma(b3, v1, a31); a32 = fma(b3, v2, a32)
                    v += vs
                }
                let cols = Swift.min(3 * l, width - c0)
                @inline(__always) func emit(_ row: Int, _ a: V, _ b: V, _ c: V) {
                    let dst = o + (r + row) * os + c0
                    let inv = V(repeating: inverse[r + row])
                    emitColumns(a * inv, dst, cols)
                    if cols > l { emitColumns(b * inv, dst + l, cols - l) }
                    if cols > 2 * l { emitColumns(c * inv, dst + 2 * l, cols - 2 * l) }
                }
                emit(0, a00, a01, a02)
                if n > 1 { emit(1, a10, a11, a12) }
                if n > 2 { emit(2, a20, a21, a22) }
                if n > 3 { emit(3, a30, a31, a32) }
                c0 += 3 * l
            }
            r += 4
        }
    }

    /// Stores the first min(count, lanes) lanes of v at dst.
    @inline(__always) static func emitColumns(_ v: V, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
        if count >= V.scalarCount { store(v, dst) } else { storeTail(v, dst, count) }
    }
}
