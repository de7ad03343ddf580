/// Winograd F(2x2, 3x3) convolution for the 3x3, stride-1, padding-1 convolutions that dominate a UNet.
///
/// Each 2x2 output tile is A^T [(G g G^T) ⊙ (B^T d B)] A over its 4x4 input tile d, so the channel
/// mixing becomes 16 independent sgemms (one per tile position ξ) with 16 multiplies per 4 outputs
/// instead of 36: 2.25x fewer sgemm FLOPs than im2col, and no 9x-expanded im2col matrix. The backward
/// runs the transposed transforms: dV = U^T dM gives dx (scatter-added through B), dU = dM V^T gives
/// dW (through G). Exact in real arithmetic; in float32 it differs from direct convolution by rounding
/// only (the transform constants are 0, ±1, ±1/2).
///
/// Layouts: U [16][Cout][Cin], V [16][Cin][T], M [16][Cout][T] with T the tiles of a chunk of images.
struct WinogradF2Plan: WinogradTransforms {
    static let positions = 16
    let g: ConvGeometry
    let tilesH: Int, tilesW: Int
    var tilesPerImage: Int { tilesH * tilesW }
    /// Side of the zero-padded plane scratch: the image plus the padding ring, rounded up to whole tiles.
    var paddedH: Int { 2 * tilesH + 2 }
    var paddedW: Int { 2 * tilesW + 2 }

    /// Images per pass: the V and M matrices of a chunk stay within ~8 MB (in the shared cache) while
    /// the sgemm N dimension (the chunk's tiles) stays at least ~512 where the batch allows.
    var imagesPerChunk: Int {
        let bytesPerImage = 16 * (g.inC + g.outC) * tilesPerImage * 4
        return Swift.max(1, Swift.min(g.batch, (8 << 20) / Swift.max(1, bytesPerImage)))
    }
    /// The same for the 16 transformed weight matrices [Cout][Cin].
    var weightStride: Int { g.outC * g.inC + 16 }

    init(_ g: ConvGeometry) {
        self.g = g
        tilesH = (g.outH + 1) / 2
        tilesW = (g.outW + 1) / 2
    }

    /// Whether Winograd applies and pays: 3x3, stride 1, padding 1 on every side, and enough tiles for
    /// the 16 sgemms to be efficient (tiny maps go through batched im2col instead).
    static func applies(_ g: ConvGeometry, paddingEnd: Int?) -> Bool {
        g.kh == 3 && g.kw == 3 && g.stride == 1 && g.padding == 1 && (paddingEnd ?? 1) == 1
            && g.batch * ((g.outH + 1) / 2) * ((g.outW + 1) / 2) >= 32
    }

    /// U[ξ][co][ci] = (G w G^T)[ξ], G = [[1,0,0],[½,½,½],[½,-½,½],[0,0,1]].
    func transformWeights(_ w: UnsafePointer<Float>, into u: UnsafeMutablePointer<Float>) {
        let ws = weightStride
        typealias V = PairLanes.V
        // G z for a column z of 3: (z0, ½(z0 + z1 + z2), ½(z0 - z1 + z2), z2).
        @inline(__always) func gz(_ a: V, _ b: V, _ c: V) -> (V, V, V, V) {
            (a, 0.5 * (a + b + c), 0.5 * (a - b + c), c)
        }
        PairLanes.forEachBlock(g.outC * g.inC) { first, count in
            @inline(__always) func k(_ i: Int) -> V { PairLanes.gather(w + i, first: first, count: count, stride: 9) }
            // Columns of w through G, then the rows of the 4x3 result through G.
            let c0 = gz(k(0), k(3), k(6)), c1 = gz(k(1), k(4), k(7)), c2 = gz(k(2), k(5), k(8))
            @inline(__always) func emit(_ r: Int, _ row: (V, V, V, V)) {
                PairLanes.store(row.0, u + (r * 4) * ws, first: first, count: count)
                PairLanes.store(row.1, u + (r * 4 + 1) * ws, first: first, count: count)
                PairLanes.store(row.2, u + (r * 4 + 2) * ws, first: first, count: count)
                PairLanes.store(row.3, u + (r * 4 + 3) * ws, first: first, count: count)
            }
            emit(0, gz(c0.0, c1.0, c2.0))
            emit(1, gz(c0.1, c1.1, c2.1))
            emit(2, gz(c0.2, c1.2, c2.2))
            emit(3, gz(c0.3, c1.3, c2.3))
        }
    }

    /// dW = G^T dU G for every (co, ci), from dU[ξ][co][ci].
    func weightGradient(_ du: UnsafePointer<Float>, into dw: UnsafeMutablePointer<Float>) {
        let ws = weightStride
        typealias V = PairLanes.V
        // G^T z for a column z of 4: (z0 + ½(z1 + z2), ½(z1 - z2), ½(z1 + z2) + z3).
        @inline(__always) func gt(_ a: V, _ b: V, _ c: V, _ d: V) -> (V, V, V) {
            (a + 0.5 * (b + c), 0.5 * (b - c), 0.5 * (b + c) + d)
        }
        PairLanes.forEachBlock(g.outC * g.inC) { first, count in
            @inline(__always) func u(_ r: Int, _ c: Int) -> V { PairLanes.load(du + (r * 4 + c) * ws, first: first, count: count) }
            let c0 = gt(u(0, 0), u(1, 0), u(2, 0), u(3, 0)), c1 = gt(u(0, 1), u(1, 1), u(2, 1), u(3, 1))
            let c2 = gt(u(0, 2), u(1, 2), u(2, 2), u(3, 2)), c3 = gt(u(0, 3), u(1, 3), u(2, 3), u(3, 3))
            @inline(__always) func emit(_ r: Int, _ row: (V, V, V)) {
                PairLanes.scatter(row.0, dw + r * 3, first: first, count: count, stride: 9)
                PairLanes.scatter(row.1, dw + r * 3 + 1, first: first, count: count, stride: 9)
                PairLanes.scatter(row.2, dw + r * 3 + 2, first: first, count: count, stride: 9)
            }
            emit(0, gt(c0.0, c1.0, c2.0, c3.0))
            emit(1, gt(c0.1, c1.1, c2.1, c3.1))
            emit(2, gt(c0.2, c1.2, c2.2, c3.2))
        }
    }

    /// V[ξ][c][tile] = (B^T d B)[ξ] for every input tile d, B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]].
    /// Planes are read from `src` as [B][channels][H][W]; only the images in `images` are transformed.
    func transformInput(_ src: UnsafePointer<Float>, channels: Int, images: Range<Int>,
                        into v: UnsafeMutablePointer<Float>) {
        let (h, w) = (g.height, g.width)
        let tc = images.count * tilesPerImage
        let stride16 = winogradMatrixStride(rows: channels, tiles: tc)
        let (ph, pw) = (paddedH, paddedW)
        Parallel.forRanges(images.count * channels, grain: Parallel.grain(perIteration: 4 * h * w)) { planes in
            var scratch = [Float](repeating: 0, count: ph * pw)
            scratch.withUnsafeMutableBufferPointer { sp in
                let s = sp.baseAddress!
                for plane in planes {
                    let (i, c) = (plane / channels, plane % channels)
                    let img = src + ((images.lowerBound + i) * channels + c) * h * w
                    for y in 0..<h { (s + (y + 1) * pw + 1).update(from: img + y * w, count: w) }
                    let out = v + c * tc + i * tilesPerImage
                    for ty in 0..<tilesH {
                        let r0 = s + 2 * ty * pw, r1 = r0 + pw, r2 = r1 + pw, r3 = r2 + pw
                        for tx in 0..<tilesW {
                            let x0 = 2 * tx
                            let idx = ty * tilesW + tx
                            @inline(__always) func load(_ r: UnsafeMutablePointer<Float>) -> SIMD4<Float> {
                                UnsafeRawPointer(r + x0).loadUnaligned(as: SIMD4<Float>.self)
                            }
                            let (d0, d1, d2, d3) = (load(r0), load(r1), load(r2), load(r3))
                            let base = out + idx
                            // Rows of B^T d, then columns (p, q, r, t) -> (p - r, q + r, r - q, q - t).
                            @inline(__always) func emit(_ r: Int, _ row: SIMD4<Float>) {
                                base[(r * 4 + 0) * stride16] = row[0] - row[2]
                                base[(r * 4 + 1) * stride16] = row[1] + row[2]
                                base[(r * 4 + 2) * stride16] = row[2] - row[1]
                                base[(r * 4 + 3) * stride16] = row[1] - row[3]
                            }
                            emit(0, d0 - d2)
                            emit(1, d1 + d2)
                            emit(2, d2 - d1)
                            emit(3, d1 - d3)
                        }
                    }
                }
            }
        }
    }

    /// y = A^T m A (+ bias) for every output tile, A^T = [[1,1,1,0],[0,1,-1,-1]]; writes NCHW output.
    func transformOutput(_ m: UnsafePointer<Float>, bias: UnsafeBufferPointer<Float>, images: Range<Int>,
                         into y: UnsafeMutablePointer<Float>) {
        let (oh, ow, cout) = (g.outH, g.outW, g.outC)
        let tc = images.count * tilesPerImage
        let stride16 = winogradMatrixStride(rows: cout, tiles: tc)
        Parallel.forRanges(images.count * cout, grain: Parallel.grain(perIteration: 4 * oh * ow)) { planes in
            for plane in planes {
                let (i, co) = (plane / cout, plane % cout)
                let bv: Float = bias.isEmpty ? 0 : bias[co]
                let src = m + co * tc + i * tilesPerImage
                let dst = y + ((images.lowerBound + i) * cout + co) * oh * ow
                for ty in 0..<tilesH {
                    for tx in 0..<tilesW {
                        let p = src + ty * tilesW + tx
                        @inline(__always) func at(_ i: Int) -> Float { p[i * stride16] }
                        // s0 = m row0 + row1 + row2, s1 = row1 - row2 - row3 (rows of 4).
                        let s00 = at(0) + at(4) + at(8), s01 = at(1) + at(5) + at(9)
                        let s02 = at(2) + at(6) + at(10), s03 = at(3) + at(7) + at(11)
                        let s10 = at(4) - at(8) - at(12), s11 = at(5) - at(9) - at(13)
                        let s12 = at(6) - at(10) - at(14), s13 = at(7) - at(11) - at(15)
                        let y00 = s00 + s01 + s02 + bv, y01 = s01 - s02 - s03 + bv
                        let y10 = s10 + s11 + s12 + bv, y11 = s11 - s12 - s13 + bv
                        let oy = 2 * ty, ox = 2 * tx
                        dst[oy * ow + ox] = y00
                        if ox + 1 < ow { dst[oy * ow + ox + 1] = y01 }
                        if oy + 1 < oh {
                            dst[(oy + 1) * ow + ox] = y10
                            if ox + 1 < ow { dst[(oy + 1) * ow + ox + 1] = y11 }
                        }
                    }
                }
            }
        }
    }

    /// dM[ξ][co][tile] = (A dy A^T)[ξ] for every 2x2 output-gradient tile (the transposed output transform).
    func transformOutputGradient(_ dy: UnsafePointer<Float>, images: Range<Int>, into dm: UnsafeMutablePointer<Float>) {
        let (oh, ow, cout) = (g.outH, g.outW, g.outC)
        let tc = images.count * tilesPerImage
        let stride16 = winogradMatrixStride(rows: cout, tiles: tc)
        Parallel.forRanges(images.count * cout, grain: Parallel.grain(perIteration: 4 * oh * ow)) { planes in
            for plane in planes {
                let (i, co) = (plane / cout, plane % cout)
                let src = dy + ((images.lowerBound + i) * cout + co) * oh * ow
                let dst = dm + co * tc + i * tilesPerImage
                for ty in 0..<tilesH {
                    for tx in 0..<tilesW {
                        let oy = 2 * ty, ox = 2 * tx
                        let g00 = src[oy * ow + ox]
                        let g01: Float = ox + 1 < ow ? src[oy * ow + ox + 1] : 0
                        let g10: Float = oy + 1 < oh ? src[(oy + 1) * ow + ox] : 0
                        let g11: Float = (oy + 1 < oh && ox + 1 < ow) ? src[(oy + 1) * ow + ox + 1] : 0
                        // Rows of A g: (g0, g0 + g1, g0 - g1, -g1); columns (a, b) -> (a, a + b, a - b, -b).
                        let p = dst + ty * tilesW + tx
                        @inline(__always) func put(_ r: Int, _ a: Float, _ b: Float) {
                            p[(r * 4) * stride16] = a
                            p[(r * 4 + 1) * stride16] = a + b
                            p[(r * 4 + 2) * stride16] = a - b
                            p[(r * 4 + 3) * stride16] = -b
                        }
                        put(0, g00, g01)
                        put(1, g00 + g10, g01 + g11)
                        put(2, g00 - g10, g01 - g11)
                        put(3, -g10, -g11)
                    }
                }
            }
        }
    }

    /// dx = sum over tiles of B dV B^T, scatter-added at each tile's input position (tiles overlap).
    func transformInputGradient(_ dv: UnsafePointer<Float>, images: Range<Int>, into dx: UnsafeMutablePointer<Float>) {
        let (h, w, cin) = (g.height, g.width, g.inC)
        let tc = images.count * tilesPerImage
        let stride16 = winogradMatrixStride(rows: cin, tiles: tc)
        let (ph, pw) = (paddedH, paddedW)
        Parallel.forRanges(images.count * cin, grain: Parallel.grain(perIteration: 4 * h * w)) { planes in
            var scratch = [Float](repeating: 0, count: ph * pw)
            scratch.withUnsafeMutableBufferPointer { sp in
                let s = sp.baseAddress!
                for plane in planes {
                    let (i, c) = (plane / cin, plane % cin)
                    s.update(repeating: 0, count: ph * pw)
                    let src = dv + c * tc + i * tilesPerImage
                    for ty in 0..<tilesH {
                        for tx in 0..<tilesW {
                            let p = src + ty * tilesW + tx
                            @inline(__always) func at(_ i: Int) -> Float { p[i * stride16] }
                            @inline(__always) func row(_ r: Int) -> SIMD4<Float> {
                                SIMD4(at(r * 4), at(r * 4 + 1), at(r * 4 + 2), at(r * 4 + 3))
                            }
                            let (v0, v1, v2, v3) = (row(0), row(1), row(2), row(3))
                            // B dV: rows (v0, v1 - v2 + v3, -v0 + v1 + v2, -v3); then each row
                            // (a, b, c, d) -> (a, b - c + d, -a + b + c, -d), added at the tile's place.
                            @inline(__always) func emit(_ r: Int, _ t: SIMD4<Float>) {
                                let raw = UnsafeMutableRawPointer(s + (2 * ty + r) * pw + 2 * tx)
                                let add = SIMD4<Float>(t[0], t[1] - t[2] + t[3], t[1] + t[2] - t[0], -t[3])
                                raw.storeBytes(of: raw.loadUnaligned(as: SIMD4<Float>.self) + add, as: SIMD4<Float>.self)
                            }
                            emit(0, v0)
                            emit(1, v1 - v2 + v3)
                            emit(2, v1 + v2 - v0)
                            emit(3, -v3)
                        }
                    }
                    let img = dx + ((images.lowerBound + i) * cin + c) * h * w
                    for y in 0..<h { (img + y * w).update(from: s + (y + 1) * pw + 1, count: w) }
                }
            }
        }
    }
}
