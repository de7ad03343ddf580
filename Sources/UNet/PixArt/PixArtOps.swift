import Foundation
import TensorMath

/// The element-wise pieces of PixArt's blocks that the UNet does not have, each forward beside its
/// backward: GELU in torch's tanh form, adaLN modulation and gating by per-item vectors, the
/// caption-masked attention, and the patch layouts.
enum PixArtOps {
    /// torch's `gelu(x, approximate='tanh')`: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    static func geluTanh(_ x: Tensor) -> Tensor {
        Tensor(uninitializedShape: x.shape) { out in
            x.data.withUnsafeBufferPointer { px in
                Parallel.forParts(count: x.count) { _, range in
                    for i in range {
                        let v = px[i]
                        out[i] = 0.5 * v * (1 + tanhf(kAlpha * (v + kBeta * v * v * v)))
                    }
                }
            }
        }
    }

    /// Backward of `geluTanh` given its input: 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
    static func geluTanhBackward(_ dy: Tensor, input x: Tensor) -> Tensor {
        precondition(dy.shape == x.shape, "geluTanhBackward: gradient \(dy.shape) vs input \(x.shape)")
        return Tensor(uninitializedShape: x.shape) { out in
            x.data.withUnsafeBufferPointer { px in
            dy.data.withUnsafeBufferPointer { pg in
                Parallel.forParts(count: x.count) { _, range in
                    for i in range {
                        let v = px[i]
                        let t = tanhf(kAlpha * (v + kBeta * v * v * v))
                        let d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * kAlpha * (1 + 3 * kBeta * v * v)
                        out[i] = pg[i] * d
                    }
                }
            }
            }
        }
    }

    private static let kAlpha = Float((2 / Double.pi).squareRoot())
    private static let kBeta: Float = 0.044715

    /// x * (1 + scale) + shift with x [B, N, D] and scale, shift the rows `scaleRow`, `shiftRow` of
    /// `table` [B, R, D] (one vector per batch item, broadcast over the N tokens).
    static func modulate(_ x: Tensor, _ table: Tensor, shiftRow: Int, scaleRow: Int) -> Tensor {
        let (b, n, d) = (x.shape[0], x.shape[1], x.shape[2]), rows = table.shape[1]
        return Tensor(uninitializedShape: x.shape) { out in
            x.data.withUnsafeBufferPointer { px in
            table.data.withUnsafeBufferPointer { pt in
                for item in 0..<b {
                    let shift = pt.baseAddress! + (item * rows + shiftRow) * d
                    let scale = pt.baseAddress! + (item * rows + scaleRow) * d
                    for token in 0..<n {
                        let o = (item * n + token) * d
                        for i in 0..<d { out[o + i] = px[o + i] * (1 + scale[i]) + shift[i] }
                    }
                }
            }
            }
        }
    }

    /// Backward of `modulate`: returns dx and adds the shift and scale gradients (summed over tokens)
    /// into rows `shiftRow`, `scaleRow` of `dTable` [B, R, D].
    static func modulateBackward(_ dy: Tensor, input x: Tensor, _ table: Tensor, shiftRow: Int, scaleRow: Int,
                                 dTable: inout Tensor) -> Tensor {
        let (b, n, d) = (x.shape[0], x.shape[1], x.shape[2]), rows = table.shape[1]
        var dx = Tensor(zeros: x.shape)
        x.data.withUnsafeBufferPointer { px in
        dy.data.withUnsafeBufferPointer { pg in
        table.data.withUnsafeBufferPointer { pt in
        dTable.data.withUnsafeMutableBufferPointer { pd in
        dx.data.withUnsafeMutableBufferPointer { pdx in
            for item in 0..<b {
                let scale = pt.baseAddress! + (item * rows + scaleRow) * d
                let dShift = pd.baseAddress! + (item * rows + shiftRow) * d
                let dScale = pd.baseAddress! + (item * rows + scaleRow) * d
                for token in 0..<n {
                    let o = (item * n + token) * d
                    for i in 0..<d {
                        let g = pg[o + i]
                        pdx[o + i] = g * (1 + scale[i])
                        dShift[i] += g
                        dScale[i] += g * px[o + i]
                    }
                }
            }
        }
        }
        }
        }
        }
        return dx
    }

    /// residual + gate * y, the gate row `row` of `table` [B, R, D] broadcast over tokens.
    static func gatedAdd(_ residual: Tensor, _ y: Tensor, _ table: Tensor, row: Int) -> Tensor {
        let (b, n, d) = (y.shape[0], y.shape[1], y.shape[2]), rows = table.shape[1]
        return Tensor(uninitializedShape: y.shape) { out in
            residual.data.withUnsafeBufferPointer { pr in
            y.data.withUnsafeBufferPointer { py in
            table.data.withUnsafeBufferPointer { pt in
                for item in 0..<b {
                    let gate = pt.baseAddress! + (item * rows + row) * d
                    for token in 0..<n {
                        let o = (item * n + token) * d
                        for i in 0..<d { out[o + i] = pr[o + i] + gate[i] * py[o + i] }
                    }
                }
            }
            }
            }
        }
    }

    /// Backward of `gatedAdd` with respect to y (the residual's is dOut itself); adds the gate's
    /// gradient into row `row` of `dTable`.
    static func gatedAddBackward(_ dOut: Tensor, y: Tensor, _ table: Tensor, row: Int, dTable: inout Tensor) -> Tensor {
        let (b, n, d) = (y.shape[0], y.shape[1], y.shape[2]), rows = table.shape[1]
        var dy = Tensor(zeros: y.shape)
        dOut.data.withUnsafeBufferPointer { pg in
        y.data.withUnsafeBufferPointer { py in
        table.data.withUnsafeBufferPointer { pt in
        dTable.data.withUnsafeMutableBufferPointer { pd in
        dy.data.withUnsafeMutableBufferPointer { pdy in
            for item in 0..<b {
                let gate = pt.baseAddress! + (item * rows + row) * d
                let dGate = pd.baseAddress! + (item * rows + row) * d
                for token in 0..<n {
                    let o = (item * n + token) * d
                    for i in 0..<d {
                        pdy[o + i] = pg[o + i] * gate[i]
                        dGate[i] += pg[o + i] * py[o + i]
                    }
                }
            }
        }
        }
        }
        }
        }
        return dy
    }

    /// Appends one column to every head of `x` [B, S, H*d] -> [B, S, H*(d+1)]: `value(item, row)`.
    /// Attention with an additive key bias b_j is attention over queries with a column of ones and keys
    /// with a column b_j / scale: the score gains exactly scale * b_j / scale, and the kernels stay as they are.
    static func appendingHeadColumn(_ x: Tensor, heads: Int, value: (Int, Int) -> Float) -> Tensor {
        let (b, s, w) = (x.shape[0], x.shape[1], x.shape[2]), d = w / heads
        return Tensor(uninitializedShape: [b, s, heads * (d + 1)]) { out in
            x.data.withUnsafeBufferPointer { px in
                for item in 0..<b {
                    for row in 0..<s {
                        let src = px.baseAddress! + (item * s + row) * w
                        let dst = out.baseAddress! + (item * s + row) * heads * (d + 1)
                        let extra = value(item, row)
                        for h in 0..<heads {
                            (dst + h * (d + 1)).update(from: src + h * d, count: d)
                            dst[h * (d + 1) + d] = extra
                        }
                    }
                }
            }
        }
    }

    /// Drops the column `appendingHeadColumn` added (the backward of its copy).
    static func droppingHeadColumn(_ x: Tensor, heads: Int) -> Tensor {
        let (b, s, w) = (x.shape[0], x.shape[1], x.shape[2]), d = w / heads - 1
        return Tensor(uninitializedShape: [b, s, heads * d]) { out in
            x.data.withUnsafeBufferPointer { px in
                for r in 0..<(b * s) {
                    for h in 0..<heads {
                        (out.baseAddress! + r * heads * d + h * d).update(from: px.baseAddress! + r * w + h * (d + 1), count: d)
                    }
                }
            }
        }
    }

    /// The patches of x [B, C, H, W] as tokens [B, (H/p)(W/p), C p p] in row-major patch order, each
    /// token's entries in the order `channelsLast` says: (c, u, v) as a Conv2d weight [D, C, p, p]
    /// flattens (PatchEmbed's proj), or (u, v, c) as PixArt's unpatchify reads proj_out's rows.
    static func patches(_ x: Tensor, patch p: Int, channelsLast: Bool) -> Tensor {
        let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (hp, wp) = (h / p, w / p), width = c * p * p
        return Tensor(uninitializedShape: [b, hp * wp, width]) { out in
            x.data.withUnsafeBufferPointer { px in
                for item in 0..<b {
                    for ch in 0..<c {
                        for y in 0..<h {
                            for xx in 0..<w {
                                let (i, u, j, v) = (y / p, y % p, xx / p, xx % p)
                                let entry = channelsLast ? (u * p + v) * c + ch : (ch * p + u) * p + v
                                out[(item * hp * wp + i * wp + j) * width + entry] = px[((item * c + ch) * h + y) * w + xx]
                            }
                        }
                    }
                }
            }
        }
    }

    /// The inverse of `patches`: tokens [B, hp*wp, C p p] back to [B, C, hp p, wp p].
    static func image(fromPatches t: Tensor, patch p: Int, channels c: Int, height hp: Int, width wp: Int,
                      channelsLast: Bool) -> Tensor {
        let b = t.shape[0], (h, w) = (hp * p, wp * p), width = c * p * p
        return Tensor(uninitializedShape: [b, c, h, w]) { out in
            t.data.withUnsafeBufferPointer { pt in
                for item in 0..<b {
                    for ch in 0..<c {
                        for y in 0..<h {
                            for xx in 0..<w {
                                let (i, u, j, v) = (y / p, y % p, xx / p, xx % p)
                                let entry = channelsLast ? (u * p + v) * c + ch : (ch * p + u) * p + v
                                out[((item * c + ch) * h + y) * w + xx] = pt[(item * hp * wp + i * wp + j) * width + entry]
                            }
                        }
                    }
                }
            }
        }
    }

    /// diffusers' `get_2d_sincos_pos_embed(dim, (hp, wp), base_size, interpolation_scale)` as PatchEmbed
    /// adds it, [hp*wp, dim]: grid positions i / (side / base_size) / interpolation_scale in float32, sines
    /// and cosines in float64 (frequencies 1 / 10000^(k / (dim/4))), rounded to float32. The first half of
    /// each row encodes the column (diffusers' meshgrid puts w first), the second half the row.
    static func positionEmbedding(dim: Int, height hp: Int, width wp: Int, baseSize: Int, interpolationScale: Double) -> Tensor {
        let quarter = dim / 4
        let omega = (0..<quarter).map { k in 1 / pow(10000, Double(k) / Double(quarter)) }
        func positions(_ side: Int) -> [Float] {
            let step = Float(Double(side) / Double(baseSize)), scale = Float(interpolationScale)
            return (0..<side).map { Float($0) / step / scale }
        }
        let rows = positions(hp), cols = positions(wp)
        return Tensor(uninitializedShape: [hp * wp, dim]) { out in
            for i in 0..<hp {
                for j in 0..<wp {
                    let o = out.baseAddress! + (i * wp + j) * dim
                    for (half, pos) in [(0, Double(cols[j])), (1, Double(rows[i]))] {
                        for k in 0..<quarter {
                            let a = pos * omega[k]
                            o[half * 2 * quarter + k] = Float(sin(a))
                            o[half * 2 * quarter + quarter + k] = Float(cos(a))
                        }
                    }
                }
            }
        }
    }
}
