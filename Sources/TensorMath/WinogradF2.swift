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
        let pairs = g.outC * g.inC, ws = weightStride
        Parallel.forRanges(pairs, grain: 1024) { range in
            for pair in range {
                let k = w + pair * 9
                // Rows of G w (4 rows of 3, padded to SIMD4).
                let r0 = SIMD4<Float>(k[0], k[1], k[2], 0), r1 = SIMD4<Float>(k[3], k[4], k[5], 0)
                let r2 = SIMD4<Float>(k[6], k[7], k[8], 0)
                @inline(__always) func emit(_ r: Int, _ t: SIMD4<Float>) {
                    let base = u + r * 4 * ws + pair
                    base[0] = t[0]
                    base[ws] = 0.5 * (t[0] + t[1] + t[2])
                    base[2 * ws] = 0.5 * (t[0] - t[1] + t[2])
                    base[3 * ws] = t[2]
                }
                emit(0, r0)
                emit(1, 0.5 * (r0 + r1 + r2))
                emit(2, 0.5 * (r0 - r1 + r2))
                emit(3, r2)
            }
        }
    }

    /// dW = G^T dU G for every (co, ci), from dU[ξ][co][ci].
    func weightGradient(_ du: UnsafePointer<Float>, into dw: UnsafeMutablePointer<Float>) {
        let pairs = g.outC * g.inC, ws = weightStride
        Parallel.forRanges(pairs, grain: 1024) { range in
            for pair in range {
                // Rows of dU, then t = G^T dU (3 rows of 4), G^T = [[1,½,½,0],[0,½,-½,0],[0,½,½,1]].
                @inline(__always) func row(_ r: Int) -> SIMD4<Float> {
                    SIMD4(du[(r * 4) * ws + pair], du[(r * 4 + 1) * ws + pair],
                          du[(r * 4 + 2) * ws + pair], du[(r * 4 + 3) * ws + pair])
                }
                let (u0, u1, u2, u3) = (row(0), row(1), row(2), row(3))
                let t0 = u0 + 0.5 * (u1 + u2), t1 = 0.5 * (u1 - u2), t2 = 0.5 * (u1 + u2) + u3
                let out = dw + pair * 9
                @inline(__always) func emit(_ r: Int, _ t: SIMD4<Float>) {
                    out[r * 3] = t[0] + 0.5 * (t[1] + t[2])
                    out[r * 3 + 1] = 0.5 * (t[1] - t[2])
                    out[r * 3 + 2] = 0.5 * (t[1] + t[2]) + t[3]
                }
                emit(0, t0)
                emit(1, t1)
                emit(2, t2)
            }
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
        Parallel.forRanges(images.count * channels, grain: 1) { planes in
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
        Parallel.forRanges(images.count * cout, grain: 1) { planes in
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
        Parallel.forRanges(images.count * cout, grain: 1) { planes in
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
        Parallel.forRanges(images.count * cin, grain: 1) { planes in
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
