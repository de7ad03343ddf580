import Foundation

/// What `attention` keeps for its backward: the log-sum-exp of each score row, [B, H, Sq]. The backward
/// recomputes the probabilities from it (one extra Q K^T product) instead of storing B*H*Sq*Sk floats.
public struct AttentionStatistics: Sendable {
    public var logSumExp: [Float]
}

/// Sizes of one attention call.
struct AttentionGeometry {
    let batch, sq, sk, heads, headDim, valueDim: Int
    let scale: Float
    /// Query rows per score block, so a block of scores stays near 4 MB however long the keys are.
    let rowBlock: Int
    var qWidth: Int { heads * headDim }
    var vWidth: Int { heads * valueDim }
    init(q: [Int], k: [Int], v: [Int], heads: Int, scale: Float?, rowBlock: Int?) {
        precondition(q.count == 3 && k.count == 3 && v.count == 3 && q[0] == k[0] && k[0] == v[0] && k[1] == v[1],
                     "attention: q \(q), k \(k), v \(v) must be [B,S,H*d] with matching B and key length")
        precondition(heads > 0 && q[2] % heads == 0 && k[2] == q[2] && v[2] % heads == 0,
                     "attention: widths q \(q[2]), k \(k[2]), v \(v[2]) do not split into \(heads) heads")
        batch = q[0]; sq = q[1]; sk = k[1]; self.heads = heads
        headDim = q[2] / heads; valueDim = v[2] / heads
        self.scale = scale ?? 1 / Float(headDim).squareRoot()
        self.rowBlock = Swift.max(1, Swift.min(sq, rowBlock ?? (1 << 20) / Swift.max(1, sk)))
    }
}

extension NN {
    /// Scaled dot-product multi-head attention, softmax(scale * Q K^T) V per head, as diffusers'
    /// `Attention` computes it after its projections. q: [B, Sq, H*d]; k: [B, Sk, H*d]; v: [B, Sk, H*dv]
    /// (head h uses columns h*d ..< (h+1)*d); scale defaults to 1/sqrt(d). Self-attention passes the same
    /// sequence length; cross-attention a different Sk. Returns [B, Sq, H*dv] and the row statistics the
    /// backward needs.
    public static func attention(q: Tensor, k: Tensor, v: Tensor, heads: Int,
                                 scale: Float? = nil) -> (output: Tensor, stats: AttentionStatistics) {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("attention \(k.shape[1]) keys", profileMark) }
        return attention(q: q, k: k, v: v, heads: heads, scale: scale, rowBlock: nil)
    }

    /// Which forward `attention` runs: the fused kernels pay where score rows are long (self-attention over
    /// >= 1024 tokens) and heads narrow; the sgemm path elsewhere (TensorMathBench --cpu, this 2-core Zen 5:
    /// 64x64 c320 8 heads 171-186 -> 147-149 ms fused; 16x16 c256 1 head 1.45 ms by sgemm, 1.7-2.2 fused).
    enum AttentionPath { case automatic, fused, sgemm }

    static func attention(q: Tensor, k: Tensor, v: Tensor, heads: Int, scale: Float?, rowBlock: Int?,
                          path: AttentionPath = .automatic) -> (output: Tensor, stats: AttentionStatistics) {
        ComputeThreads.ensureConfigured()
        let g = AttentionGeometry(q: q.shape, k: k.shape, v: v.shape, heads: heads, scale: scale, rowBlock: rowBlock)
        let fused = path == .fused || (path == .automatic && g.sk >= 1024 && g.headDim <= 64)
        return fused ? fusedAttention(q: q, k: k, v: v, g: g, rowBlock: rowBlock) : attentionBySGEMM(q: q, k: k, v: v, g: g)
    }

    /// The sgemm forward: per head, blocks of ~4 MB of scores (`g.rowBlock` rows) through two sgemms with
    /// the softmax between. Faster than the fused kernels where keys are few or heads wide (OpenBLAS's
    /// blocking wins once the score rows are short enough to stay in cache anyway).
    static func attentionBySGEMM(q: Tensor, k: Tensor, v: Tensor, g: AttentionGeometry) -> (output: Tensor, stats: AttentionStatistics) {
        var lse = [Float](repeating: 0, count: g.batch * g.heads * g.sq)
        let out = Tensor(uninitializedShape: [g.batch, g.sq, g.vWidth]) { po in
            q.data.withUnsafeBufferPointer { pq in
            k.data.withUnsafeBufferPointer { pk in
            v.data.withUnsafeBufferPointer { pv in
            lse.withUnsafeMutableBufferPointer { pl in
                Parallel.forRanges(g.batch * g.heads, grain: Parallel.grain(perIteration: g.sq * g.sk * g.headDim)) { tasks in
                    var scores = [Float](unsafeUninitializedCapacity: g.rowBlock * g.sk) { _, n in n = g.rowBlock * g.sk }
                    scores.withUnsafeMutableBufferPointer { ps in
                        for task in tasks {
                            let b = task / g.heads, h = task % g.heads
                            let qh = pq.baseAddress! + b * g.sq * g.qWidth + h * g.headDim
                            let kh = pk.baseAddress! + b * g.sk * g.qWidth + h * g.headDim
                            let vh = pv.baseAddress! + b * g.sk * g.vWidth + h * g.valueDim
                            let oh = po.baseAddress! + b * g.sq * g.vWidth + h * g.valueDim
                            var r0 = 0
                            while r0 < g.sq {
                                let rows = Swift.min(g.rowBlock, g.sq - r0)
                                sgemm(transB: true, m: rows, n: g.sk, k: g.headDim, alpha: g.scale,
                                      a: qh + r0 * g.qWidth, lda: g.qWidth, b: kh, ldb: g.qWidth,
                                      c: ps.baseAddress!, ldc: g.sk)
                                // Unnormalized probabilities; each output row is divided by its sum after P V.
                                var sums = [Float](repeating: 0, count: rows)
                                for r in 0..<rows {
                                    let (m, s) = VectorMath.shiftedExp(ps.baseAddress! + r * g.sk, count: g.sk)
                                    pl[task * g.sq + r0 + r] = m + logf(s)
                                    sums[r] = s
                                }
                                sgemm(m: rows, n: g.valueDim, k: g.sk, a: ps.baseAddress!, lda: g.sk,
                                      b: vh, ldb: g.vWidth, c: oh + r0 * g.vWidth, ldc: g.vWidth)
                                for r in 0..<rows {
                                    let o = oh + (r0 + r) * g.vWidth
                                    let inv = 1 / sums[r]
                                    for j in 0..<g.valueDim { o[j] *= inv }
                                }
                                r0 += rows
                            }
                        }
                    }
                }
            }
            }
            }
            }
        }
        return (out, AttentionStatistics(logSumExp: lse))
    }


    /// The fused forward: K^T and V of every head are packed once (zero-padded to the kernel set's register
    /// blocks); then each task takes a block of query rows of one head through scores, softmax and
    /// probabilities x values with the block's scores held in the core's L2 (`rowBlock` rows, by default
    /// ~512 KB of scores), so no Sq x Sk matrix exists and the scores never pass through sgemm's packing.
    /// The division by each row's sum is folded into the output rows.
    static func fusedAttention(q: Tensor, k: Tensor, v: Tensor, g: AttentionGeometry,
                               rowBlock: Int?) -> (output: Tensor, stats: AttentionStatistics) {
        let kernels = VectorMath.kernels
        let kp = kernels.attentionKeyStride(g.sk), vs = kernels.attentionKeyStride(g.valueDim)
        let perHead = g.headDim * kp + g.sk * vs
        let heads = g.batch * g.heads
        let rows = Swift.max(1, Swift.min(g.sq, rowBlock ?? Swift.max(4, (1 << 17) / kp / 4 * 4)))
        let blocks = (g.sq + rows - 1) / rows
        var lse = [Float](repeating: 0, count: heads * g.sq)
        var packed = [Float](unsafeUninitializedCapacity: heads * perHead) { _, n in n = heads * perHead }
        let out = Tensor(uninitializedShape: [g.batch, g.sq, g.vWidth]) { po in
            q.data.withUnsafeBufferPointer { pq in
            k.data.withUnsafeBufferPointer { pk in
            v.data.withUnsafeBufferPointer { pv in
            lse.withUnsafeMutableBufferPointer { pl in
            packed.withUnsafeMutableBufferPointer { pp in
                Parallel.forRanges(heads, grain: Parallel.grain(perIteration: perHead)) { tasks in
                    for task in tasks {
                        let b = task / g.heads, h = task % g.heads
                        packAttentionHead(keys: pk.baseAddress! + b * g.sk * g.qWidth + h * g.headDim,
                                          values: pv.baseAddress! + b * g.sk * g.vWidth + h * g.valueDim, g,
                                          keyStride: kp, valueStride: vs, into: pp.baseAddress! + task * perHead)
                    }
                }
                Parallel.forRanges(heads * blocks, grain: Parallel.grain(perIteration: rows * g.sk * g.headDim)) { tasks in
                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: rows * kp + rows)
                    defer { scratch.deallocate() }
                    let inverse = scratch + rows * kp
                    for task in tasks {
                        let head = task / blocks, r0 = task % blocks * rows
                        let n = Swift.min(rows, g.sq - r0)
                        let b = head / g.heads, h = head % g.heads
                        let kt = UnsafePointer(pp.baseAddress! + head * perHead)
                        kernels.attentionScores(pq.baseAddress! + (b * g.sq + r0) * g.qWidth + h * g.headDim, g.qWidth,
                                                n, kt, kp, g.headDim, g.scale, scratch)
                        for r in 0..<n {
                            let (m, s) = kernels.shiftedExp(scratch + r * kp, g.sk)
                            pl[head * g.sq + r0 + r] = m + logf(s)
                            inverse[r] = 1 / s
                        }
                        kernels.attentionValues(scratch, kp, n, g.sk, kt + g.headDim * kp, vs, g.valueDim, inverse,
                                                po.baseAddress! + (b * g.sq + r0) * g.vWidth + h * g.valueDim, g.vWidth)
                    }
                }
            }
            }
            }
            }
            }
        }
        return (out, AttentionStatistics(logSumExp: lse))
    }

    /// One head's keys as K^T [headDim, keyStride] followed by its values as [keys, valueStride], both
    /// zero-padded: the layout `attentionScores` / `attentionValues` read with whole vectors.
    static func packAttentionHead(keys: UnsafePointer<Float>, values: UnsafePointer<Float>, _ g: AttentionGeometry,
                                  keyStride kp: Int, valueStride vs: Int, into dst: UnsafeMutablePointer<Float>) {
        for c in 0..<g.headDim {
            let row = dst + c * kp
            for j in 0..<g.sk { row[j] = keys[j * g.qWidth + c] }
            (row + g.sk).update(repeating: 0, count: kp - g.sk)
        }
        let vp = dst + g.headDim * kp
        for j in 0..<g.sk {
            let row = vp + j * vs
            row.update(from: values + j * g.vWidth, count: g.valueDim)
            (row + g.valueDim).update(repeating: 0, count: vs - g.valueDim)
        }
    }

    /// Backward of `attention`: given dOut [B, Sq, H*dv], returns (dq, dk, dv) in the shapes of q, k, v.
    /// With P = softmax(S), S = scale Q K^T: dV = P^T dO, dP = dO V^T, dS = P (dP - rowsum(dP P)),
    /// dQ = scale dS K, dK = scale dS^T Q.
    public static func attentionBackward(_ dOut: Tensor, q: Tensor, k: Tensor, v: Tensor, heads: Int,
                                         stats: AttentionStatistics,
                                         scale: Float? = nil) -> (dq: Tensor, dk: Tensor, dv: Tensor) {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("attention bwd \(k.shape[1]) keys", profileMark) }
        return attentionBackward(dOut, q: q, k: k, v: v, heads: heads, stats: stats, scale: scale, rowBlock: nil)
    }

    static func attentionBackward(_ dOut: Tensor, q: Tensor, k: Tensor, v: Tensor, heads: Int,
                                  stats: AttentionStatistics, scale: Float?,
                                  rowBlock: Int?) -> (dq: Tensor, dk: Tensor, dv: Tensor) {
        ComputeThreads.ensureConfigured()
        let g = AttentionGeometry(q: q.shape, k: k.shape, v: v.shape, heads: heads, scale: scale, rowBlock: rowBlock)
        precondition(dOut.shape == [g.batch, g.sq, g.vWidth], "attentionBackward: gradient \(dOut.shape)")
        precondition(stats.logSumExp.count == g.batch * g.heads * g.sq, "attentionBackward: stale statistics")
        var dq = [Float](unsafeUninitializedCapacity: q.count) { _, n in n = q.count }
        var dk = [Float](repeating: 0, count: k.count)
        var dv = [Float](repeating: 0, count: v.count)
        q.data.withUnsafeBufferPointer { pq in
        k.data.withUnsafeBufferPointer { pk in
        v.data.withUnsafeBufferPointer { pv in
        dOut.data.withUnsafeBufferPointer { pdo in
        stats.logSumExp.withUnsafeBufferPointer { pl in
        dq.withUnsafeMutableBufferPointer { pdq in
        dk.withUnsafeMutableBufferPointer { pdk in
        dv.withUnsafeMutableBufferPointer { pdv in
            Parallel.forRanges(g.batch * g.heads, grain: Parallel.grain(perIteration: g.sq * g.sk * g.headDim)) { tasks in
                let blockSize = g.rowBlock * g.sk
                var buffers = [Float](unsafeUninitializedCapacity: 2 * blockSize) { _, n in n = 2 * blockSize }
                buffers.withUnsafeMutableBufferPointer { pbuf in
                    let probs = pbuf.baseAddress!, dprobs = pbuf.baseAddress! + blockSize
                    for task in tasks {
                        let b = task / g.heads, h = task % g.heads
                        let qOff = b * g.sq * g.qWidth + h * g.headDim
                        let kOff = b * g.sk * g.qWidth + h * g.headDim
                        let vOff = b * g.sk * g.vWidth + h * g.valueDim
                        let oOff = b * g.sq * g.vWidth + h * g.valueDim
                        var r0 = 0
                        while r0 < g.sq {
                            let rows = Swift.min(g.rowBlock, g.sq - r0)
                            let first = r0 == 0
                            sgemm(transB: true, m: rows, n: g.sk, k: g.headDim, alpha: g.scale,
                                  a: pq.baseAddress! + qOff + r0 * g.qWidth, lda: g.qWidth,
                                  b: pk.baseAddress! + kOff, ldb: g.qWidth, c: probs, ldc: g.sk)
                            for r in 0..<rows {
                                let row = probs + r * g.sk
                                let l = pl[task * g.sq + r0 + r]
                                VectorMath.kernels.expShifted(row, g.sk, l)
                            }
                            let dO = pdo.baseAddress! + oOff + r0 * g.vWidth
                            // dV += P^T dO
                            sgemm(transA: true, m: g.sk, n: g.valueDim, k: rows, a: probs, lda: g.sk,
                                  b: dO, ldb: g.vWidth, beta: first ? 0 : 1,
                                  c: pdv.baseAddress! + vOff, ldc: g.vWidth)
                            // dP = dO V^T
                            sgemm(transB: true, m: rows, n: g.sk, k: g.valueDim, a: dO, lda: g.vWidth,
                                  b: pv.baseAddress! + vOff, ldb: g.vWidth, c: dprobs, ldc: g.sk)
                            for r in 0..<rows {
                                let p = probs + r * g.sk, dp = dprobs + r * g.sk
                                let dot = VectorMath.sumAndShiftedDot(p, dp, count: g.sk, shift: 0).1
                                VectorMath.kernels.softmaxBackward(p, dp, g.sk, dot)
                            }
                            // dQ = scale dS K ; dK += scale dS^T Q
                            sgemm(m: rows, n: g.headDim, k: g.sk, alpha: g.scale, a: dprobs, lda: g.sk,
                                  b: pk.baseAddress! + kOff, ldb: g.qWidth,
                                  c: pdq.baseAddress! + qOff + r0 * g.qWidth, ldc: g.qWidth)
                            sgemm(transA: true, m: g.sk, n: g.headDim, k: rows, alpha: g.scale,
                                  a: dprobs, lda: g.sk, b: pq.baseAddress! + qOff + r0 * g.qWidth,
                                  ldb: g.qWidth, beta: first ? 0 : 1, c: pdk.baseAddress! + kOff, ldc: g.qWidth)
                            r0 += rows
                        }
                    }
                }
            }
        }
        }
        }
        }
        }
        }
        }
        }
        return (Tensor(shape: q.shape, data: dq), Tensor(shape: k.shape, data: dk), Tensor(shape: v.shape, data: dv))
    }
}
