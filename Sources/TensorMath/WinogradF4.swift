/// Winograd F(4x4, 3x3): 6x6 input tiles, 36 sgemms with 36 multiplies per 16 outputs (4x fewer sgemm
/// FLOPs than im2col, 1.78x fewer than F(2x2, 3x3)). Interpolation points 0, ±1, ±2, ∞ (Lavin & Gray);
/// its float32 rounding error is ~10x that of F(2x2, 3x3) (~1e-5 of the output scale per layer, measured
/// in numpy), which is why it runs only where `applies` says it pays.
///
/// Every 2-D transform here is X -> T X T^T for a small matrix T, computed on rows held in SIMD8 lanes:
/// row combinations, an in-register transpose, row combinations again.
struct WinogradF4Plan: WinogradTransforms {
    typealias V = SIMD8<Float>
    static let positions = 36

    let g: ConvGeometry
    let tilesH: Int, tilesW: Int
    var tilesPerImage: Int { tilesH * tilesW }
    /// The padded plane: one zero row/column before, enough after for whole tiles, and 8 floats of slack
    /// so SIMD8 loads of a 6-wide tile row stay inside it.
    var paddedH: Int { 4 * tilesH + 2 }
    var paddedW: Int { 4 * tilesW + 2 + 8 }

    init(_ g: ConvGeometry) {
        self.g = g
        tilesH = (g.outH + 3) / 4
        tilesW = (g.outW + 3) / 4
    }

    /// 3x3 stride-1 padding-1 convs on maps of at least 16x16. On 8x8 maps (4 tiles per image)
    /// F(2x2, 3x3) is faster: 1.5 vs 1.9 ms forward at batch 8, 256 channels.
    static func applies(_ g: ConvGeometry, paddingEnd: Int?) -> Bool {
        g.kh == 3 && g.kw == 3 && g.stride == 1 && g.padding == 1 && (paddingEnd ?? 1) == 1
            && g.outH >= 16 && g.outW >= 16
    }

    var weightStride: Int { g.outC * g.inC + 16 }

    var imagesPerChunk: Int {
        let bytesPerImage = 36 * (g.inC + g.outC) * tilesPerImage * 4
        return Swift.max(1, Swift.min(g.batch, (8 << 20) / Swift.max(1, bytesPerImage)))
    }


    // The 1-D transforms written out (no zero multiplies, shared subexpressions), applied lane-wise to
    // SIMD8 rows; the 2-D transform is 1-D on rows, a 6x6 transpose, 1-D again.

    /// B^T z (6 -> 6).
    @inline(__always)
    static func inputTransform(_ z: (V, V, V, V, V, V)) -> (V, V, V, V, V, V) {
        let s12 = z.1 + z.2, d12 = z.1 - z.2, s34 = z.3 + z.4, d43 = z.4 - z.3, d42 = z.4 - z.2, d31 = z.3 - z.1
        return (4 * z.0 - 5 * z.2 + z.4, s34 - 4 * s12, d43 + 4 * d12, d42 + 2 * d31, d42 - 2 * d31,
                4 * z.1 - 5 * z.3 + z.5)
    }

    /// A^T z (6 -> 4).
    @inline(__always)
    static func outputTransform(_ z: (V, V, V, V, V, V)) -> (V, V, V, V) {
        let s12 = z.1 + z.2, d12 = z.1 - z.2, s34 = z.3 + z.4, d34 = z.3 - z.4
        return (z.0 + s12 + s34, d12 + 2 * d34, s12 + 4 * s34, d12 + 8 * d34 + z.5)
    }

    /// A z (4 -> 6): the transposed output transform, for output gradients.
    @inline(__always)
    static func outputGradientTransform(_ z: (V, V, V, V)) -> (V, V, V, V, V, V) {
        let s02 = z.0 + z.2, s13 = z.1 + z.3, q02 = z.0 + 4 * z.2, q13 = 2 * z.1 + 8 * z.3
        return (z.0, s02 + s13, s02 - s13, q02 + q13, q02 - q13, z.3)
    }

    /// B z (6 -> 6): the transposed input transform, for input gradients.
    @inline(__always)
    static func inputGradientTransform(_ z: (V, V, V, V, V, V)) -> (V, V, V, V, V, V) {
        let d21 = z.2 - z.1, d43 = z.4 - z.3, s12 = z.1 + z.2, s34 = z.3 + z.4
        return (4 * z.0, 4 * d21 + 2 * d43 + 4 * z.5, -5 * z.0 - 4 * s12 - s34, -d21 - 2 * d43 - 5 * z.5,
                z.0 + s12 + s34, z.5)
    }

    /// G z (3 -> 6), for weights.
    @inline(__always)
    static func weightTransform(_ z: (V, V, V)) -> (V, V, V, V, V, V) {
        let s02 = z.0 + z.2
        return (z.0 / 4, -(s02 + z.1) / 6, -(s02 - z.1) / 6, z.0 / 24 + z.1 / 12 + z.2 / 6,
                z.0 / 24 - z.1 / 12 + z.2 / 6, z.2)
    }

    /// G^T z (6 -> 3), for weight gradients.
    @inline(__always)
    static func weightGradientTransform(_ z: (V, V, V, V, V, V)) -> (V, V, V) {
        let s12 = z.1 + z.2, d21 = z.2 - z.1, s34 = z.3 + z.4, d34 = z.3 - z.4
        return (z.0 / 4 - s12 / 6 + s34 / 24, d21 / 6 + d34 / 12, -s12 / 6 + s34 / 6 + z.5)
    }

    /// Lane c of the result holds row c's... i.e. the 6x6 transpose of rows r0...r5 (lanes 0..<6).
    @inline(__always)
    static func transpose6(_ r: (V, V, V, V, V, V)) -> (V, V, V, V, V, V) {
        @inline(__always) func col(_ c: Int) -> V { V(r.0[c], r.1[c], r.2[c], r.3[c], r.4[c], r.5[c], 0, 0) }
        return (col(0), col(1), col(2), col(3), col(4), col(5))
    }

    func transformWeights(_ w: UnsafePointer<Float>, into u: UnsafeMutablePointer<Float>) {
        let ws = weightStride
        PairLanes.forEachBlock(g.outC * g.inC) { first, count in
            @inline(__always) func k(_ i: Int) -> V { PairLanes.gather(w + i, first: first, count: count, stride: 9) }
            // Lanes are pairs, so the 1-D transforms apply elementwise: columns of w, then rows.
            let c0 = WinogradF4Plan.weightTransform((k(0), k(3), k(6)))
            let c1 = WinogradF4Plan.weightTransform((k(1), k(4), k(7)))
            let c2 = WinogradF4Plan.weightTransform((k(2), k(5), k(8)))
            @inline(__always) func emit(_ i: Int, _ row: (V, V, V, V, V, V)) {
                PairLanes.store(row.0, u + (i * 6) * ws, first: first, count: count)
                PairLanes.store(row.1, u + (i * 6 + 1) * ws, first: first, count: count)
                PairLanes.store(row.2, u + (i * 6 + 2) * ws, first: first, count: count)
                PairLanes.store(row.3, u + (i * 6 + 3) * ws, first: first, count: count)
                PairLanes.store(row.4, u + (i * 6 + 4) * ws, first: first, count: count)
                PairLanes.store(row.5, u + (i * 6 + 5) * ws, first: first, count: count)
            }
            emit(0, WinogradF4Plan.weightTransform((c0.0, c1.0, c2.0)))
            emit(1, WinogradF4Plan.weightTransform((c0.1, c1.1, c2.1)))
            emit(2, WinogradF4Plan.weightTransform((c0.2, c1.2, c2.2)))
            emit(3, WinogradF4Plan.weightTransform((c0.3, c1.3, c2.3)))
            emit(4, WinogradF4Plan.weightTransform((c0.4, c1.4, c2.4)))
            emit(5, WinogradF4Plan.weightTransform((c0.5, c1.5, c2.5)))
        }
    }

    func weightGradient(_ du: UnsafePointer<Float>, into dw: UnsafeMutablePointer<Float>) {
        let ws = weightStride
        PairLanes.forEachBlock(g.outC * g.inC) { first, count in
            @inline(__always) func u(_ i: Int, _ j: Int) -> V { PairLanes.load(du + (i * 6 + j) * ws, first: first, count: count) }
            @inline(__always) func column(_ j: Int) -> (V, V, V) {
                WinogradF4Plan.weightGradientTransform((u(0, j), u(1, j), u(2, j), u(3, j), u(4, j), u(5, j)))
            }
            let (c0, c1, c2, c3, c4, c5) = (column(0), column(1), column(2), column(3), column(4), column(5))
            @inline(__always) func emit(_ r: Int, _ row: (V, V, V)) {
                PairLanes.scatter(row.0, dw + r * 3, first: first, count: count, stride: 9)
                PairLanes.scatter(row.1, dw + r * 3 + 1, first: first, count: count, stride: 9)
                PairLanes.scatter(row.2, dw + r * 3 + 2, first: first, count: count, stride: 9)
            }
            emit(0, WinogradF4Plan.weightGradientTransform((c0.0, c1.0, c2.0, c3.0, c4.0, c5.0)))
            emit(1, WinogradF4Plan.weightGradientTransform((c0.1, c1.1, c2.1, c3.1, c4.1, c5.1)))
            emit(2, WinogradF4Plan.weightGradientTransform((c0.2, c1.2, c2.2, c3.2, c4.2, c5.2)))
        }
    }

    /// V[ξ][c][tile] for the images of a chunk.
    func transformInput(_ src: UnsafePointer<Float>, channels: Int, images: Range<Int>,
                        into v: UnsafeMutablePointer<Float>) {
        let (h, w) = (g.height, g.width)
        let tc = images.count * tilesPerImage
        let stride36 = winogradMatrixStride(rows: channels, tiles: tc)
        let (ph, pw) = (paddedH, paddedW)
        Parallel.forRanges(images.count * channels, grain: Parallel.grain(perIteration: 4 * h * w)) { planes in
            var plane = [Float](repeating: 0, count: ph * pw)
            plane.withUnsafeMutableBufferPointer { sp in
                let s = sp.baseAddress!
                for pl in planes {
                    let (i, c) = (pl / channels, pl % channels)
                    let img = src + ((images.lowerBound + i) * channels + c) * h * w
                    for y in 0..<h { (s + (y + 1) * pw + 1).update(from: img + y * w, count: w) }
                    let dst = v + c * tc + i * tilesPerImage
                    for ty in 0..<tilesH {
                        for tx in 0..<tilesW {
                            let base = s + 4 * ty * pw + 4 * tx
                            @inline(__always) func row(_ r: Int) -> V {
                                UnsafeRawPointer(base + r * pw).loadUnaligned(as: V.self)
                            }
                            // Rows of B^T d, transposed, B^T again: o.k[i] = V[i][k].
                            let t = WinogradF4Plan.inputTransform((row(0), row(1), row(2), row(3), row(4), row(5)))
                            let o = WinogradF4Plan.inputTransform(WinogradF4Plan.transpose6(t))
                            let p = dst + ty * tilesW + tx
                            @inline(__always) func emit(_ k: Int, _ col: V) {
                                for i in 0..<6 { p[(i * 6 + k) * stride36] = col[i] }
                            }
                            emit(0, o.0); emit(1, o.1); emit(2, o.2); emit(3, o.3); emit(4, o.4); emit(5, o.5)
                        }
                    }
                }
            }
        }
    }

    func transformOutput(_ m: UnsafePointer<Float>, bias: UnsafeBufferPointer<Float>, images: Range<Int>,
                         into y: UnsafeMutablePointer<Float>) {
        let (oh, ow, cout) = (g.outH, g.outW, g.outC)
        let tc = images.count * tilesPerImage
        let stride36 = winogradMatrixStride(rows: cout, tiles: tc)
        Parallel.forRanges(images.count * cout, grain: Parallel.grain(perIteration: 4 * oh * ow)) { planes in
            for pl in planes {
                let (i, co) = (pl / cout, pl % cout)
                let bv: Float = bias.isEmpty ? 0 : bias[co]
                let src = m + co * tc + i * tilesPerImage
                let dst = y + ((images.lowerBound + i) * cout + co) * oh * ow
                for ty in 0..<tilesH {
                    for tx in 0..<tilesW {
                        let p = src + ty * tilesW + tx
                        @inline(__always) func row(_ r: Int) -> V {
                            let q = p + r * 6 * stride36
                            return V(q[0], q[stride36], q[2 * stride36], q[3 * stride36], q[4 * stride36],
                                     q[5 * stride36], 0, 0)
                        }
                        let t = WinogradF4Plan.outputTransform((row(0), row(1), row(2), row(3), row(4), row(5)))
                        // Transpose the 4x6 rows (pad to 6 with zeros), transform again: o.c[r] = Y[r][c].
                        let z = V(repeating: 0)
                        let o = WinogradF4Plan.outputTransform(WinogradF4Plan.transpose6((t.0, t.1, t.2, t.3, z, z)))
                        let (oy, ox) = (4 * ty, 4 * tx)
                        let cols = (o.0, o.1, o.2, o.3)
                        if oy + 4 <= oh && ox + 4 <= ow {
                            for r in 0..<4 {
                                let d = dst + (oy + r) * ow + ox
                                d[0] = cols.0[r] + bv
                                d[1] = cols.1[r] + bv
                                d[2] = cols.2[r] + bv
                                d[3] = cols.3[r] + bv
                            }
                        } else {
                            let all = [cols.0, cols.1, cols.2, cols.3]
                            for c in 0..<Swift.min(4, ow - ox) {
                                for r in 0..<Swift.min(4, oh - oy) { dst[(oy + r) * ow + ox + c] = all[c][r] + bv }
                            }
                        }
                    }
                }
            }
        }
    }

    func transformOutputGradient(_ dy: UnsafePointer<Float>, images: Range<Int>, into dm: UnsafeMutablePointer<Float>) {
        let (oh, ow, cout) = (g.outH, g.outW, g.outC)
        let tc = images.count * tilesPerImage
        let stride36 = winogradMatrixStride(rows: cout, tiles: tc)
        Parallel.forRanges(images.count * cout, grain: Parallel.grain(perIteration: 4 * oh * ow)) { planes in
            for pl in planes {
                let (i, co) = (pl / cout, pl % cout)
                let src = dy + ((images.lowerBound + i) * cout + co) * oh * ow
                let dst = dm + co * tc + i * tilesPerImage
                for ty in 0..<tilesH {
                    for tx in 0..<tilesW {
                        let (oy, ox) = (4 * ty, 4 * tx)
                        @inline(__always) func row(_ r: Int) -> V {
                            if oy + 4 <= oh && ox + 4 <= ow {
                                let q = src + (oy + r) * ow + ox
                                return V(q[0], q[1], q[2], q[3], 0, 0, 0, 0)
                            }
                            var v = V(repeating: 0)
                            if oy + r < oh {
                                for c in 0..<Swift.min(4, ow - ox) { v[c] = src[(oy + r) * ow + ox + c] }
                            }
                            return v
                        }
                        let t = WinogradF4Plan.outputGradientTransform((row(0), row(1), row(2), row(3)))
                        // t rows have 4 valid lanes; transpose (lanes 4, 5 are zero) and transform
                        // the first 4 transposed rows: o.k[i] = dM[i][k].
                        let tt = WinogradF4Plan.transpose6(t)
                        let o = WinogradF4Plan.outputGradientTransform((tt.0, tt.1, tt.2, tt.3))
                        let p = dst + ty * tilesW + tx
                        @inline(__always) func emit(_ k: Int, _ col: V) {
                            for i in 0..<6 { p[(i * 6 + k) * stride36] = col[i] }
                        }
                        emit(0, o.0); emit(1, o.1); emit(2, o.2); emit(3, o.3); emit(4, o.4); emit(5, o.5)
                    }
                }
            }
        }
    }

    func transformInputGradient(_ dv: UnsafePointer<Float>, images: Range<Int>, into dx: UnsafeMutablePointer<Float>) {
        let (h, w, cin) = (g.height, g.width, g.inC)
        let tc = images.count * tilesPerImage
        let stride36 = winogradMatrixStride(rows: cin, tiles: tc)
        let (ph, pw) = (paddedH, paddedW)
        Parallel.forRanges(images.count * cin, grain: Parallel.grain(perIteration: 4 * h * w)) { planes in
            var plane = [Float](repeating: 0, count: ph * pw)
            plane.withUnsafeMutableBufferPointer { sp in
                let s = sp.baseAddress!
                for pl in planes {
                    let (i, c) = (pl / cin, pl % cin)
                    s.update(repeating: 0, count: ph * pw)
                    let src = dv + c * tc + i * tilesPerImage
                    for ty in 0..<tilesH {
                        for tx in 0..<tilesW {
                            let p = src + ty * tilesW + tx
                            @inline(__always) func row(_ r: Int) -> V {
                                let q = p + r * 6 * stride36
                                return V(q[0], q[stride36], q[2 * stride36], q[3 * stride36],
                                         q[4 * stride36], q[5 * stride36], 0, 0)
                            }
                            let t = WinogradF4Plan.inputGradientTransform((row(0), row(1), row(2), row(3), row(4), row(5)))
                            // Transposed, transformed again: o.k is column k of the 6x6 block, o.k[r] = dd[r][k];
                            // transposing once more gives its rows, added along the plane rows.
                            let o = WinogradF4Plan.transpose6(
                                WinogradF4Plan.inputGradientTransform(WinogradF4Plan.transpose6(t)))
                            let base = s + 4 * ty * pw + 4 * tx
                            @inline(__always) func add(_ r: Int, _ v: V) {
                                let raw = UnsafeMutableRawPointer(base + r * pw)
                                raw.storeBytes(of: raw.loadUnaligned(as: V.self) + v, as: V.self)
                            }
                            add(0, o.0); add(1, o.1); add(2, o.2); add(3, o.3); add(4, o.4); add(5, o.5)
                        }
                    }
                    let img = dx + ((images.lowerBound + i) * cin + c) * h * w
                    for y in 0..<h { (img + y * w).update(from: s + (y + 1) * pw + 1, count: w) }
                }
            }
        }
    }
}
