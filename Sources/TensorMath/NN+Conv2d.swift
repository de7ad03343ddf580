/// The sizes of one convolution, derived from input and weight shapes.
@usableFromInline
struct ConvGeometry {
    let batch, inC, height, width, outC, kh, kw, stride, padding, outH, outW: Int
    /// Rows of the im2col matrix: inC * kh * kw.
    var patch: Int { inC * kh * kw }
    var outHW: Int { outH * outW }
    var inHW: Int { height * width }
    /// A 1x1, stride-1, unpadded convolution: its im2col matrix is the input itself.
    var isPointwise: Bool { kh == 1 && kw == 1 && stride == 1 && padding == 0 }

    init(input: [Int], weight: [Int], stride: Int, padding: Int, paddingEnd: Int?) {
        precondition(input.count == 4 && weight.count == 4 && input[1] == weight[1],
                     "conv2d: input \(input) does not match weight \(weight) ([out, in, kh, kw])")
        let end = paddingEnd ?? padding
        precondition(stride >= 1 && padding >= 0 && end >= 0, "conv2d: stride \(stride), padding \(padding), \(end)")
        batch = input[0]; inC = input[1]; height = input[2]; width = input[3]
        outC = weight[0]; kh = weight[2]; kw = weight[3]
        self.stride = stride; self.padding = padding
        outH = (height + padding + end - kh) / stride + 1
        outW = (width + padding + end - kw) / stride + 1
        precondition(outH > 0 && outW > 0, "conv2d: kernel \(kh)x\(kw) larger than padded input \(input)")
    }

    /// Images per im2col sgemm. Small feature maps are batched so the sgemm N dimension stays large; the
    /// im2col buffer is capped (~32 MB) so large maps stream through the cache in pieces.
    func imagesPerChunk(override: Int?) -> Int {
        if let override { return Swift.max(1, Swift.min(batch, override)) }
        // A pointwise conv on a large map multiplies each image in place: no im2col, no staging copies.
        if isPointwise && outHW >= 256 { return 1 }
        let byWidth = Swift.max(1, 2048 / outHW)
        let byMemory = Swift.max(1, (8 << 20) / Swift.max(1, patch * outHW))
        return Swift.max(1, Swift.min(batch, byWidth, byMemory))
    }
}

extension NN {
    /// 2-D convolution like `torch.nn.functional.conv2d` (groups = 1, dilation = 1).
    /// x: [B, Cin, H, W]; weight: [Cout, Cin, kh, kw]; bias: [Cout] or nil. Returns [B, Cout, Ho, Wo].
    /// `padding` zeros go before each spatial dim and `paddingEnd` (default: the same) after it, so
    /// diffusers' `Downsample2D(padding=0)`, which runs `F.pad(x, (0, 1, 0, 1))` then a stride-2 conv, is
    /// `padding: 0, paddingEnd: 1` with no padded copy. 3x3 stride-1 padding-1 convs run as Winograd
    /// (F(4x4, 3x3) on maps >= 16x16, F(2x2, 3x3) on smaller ones); the rest as im2col + sgemm over
    /// chunks of images.
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1,
                              padding: Int = 0, paddingEnd: Int? = nil) -> Tensor {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("conv2d \(weight.shape[2])x\(weight.shape[3]) s\(stride) \(weight.shape[1])->\(weight.shape[0]) @\(x.shape[2])", profileMark) }
        return conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, paddingEnd: paddingEnd,
               imagesPerChunk: nil)
    }

    static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Int, paddingEnd: Int? = nil,
                       algorithm: ConvAlgorithm = .automatic, imagesPerChunk: Int?) -> Tensor {
        ComputeThreads.ensureConfigured()
        let g = ConvGeometry(input: x.shape, weight: weight.shape, stride: stride, padding: padding,
                             paddingEnd: paddingEnd)
        if let bias { precondition(bias.shape == [g.outC], "conv2d: bias \(bias.shape) for \(g.outC) outputs") }
        switch algorithm.resolved(for: g, paddingEnd: paddingEnd,
                                  cachedTransform: { cachesWinogradTransform(weight, g, positions: $0) }) {
        case .winogradF4:
            return winogradConv2d(x, weight: weight, bias: bias, geometry: g, plan: WinogradF4Plan.self,
                                  imagesPerChunk: imagesPerChunk)
        case .winogradF2:
            return winogradConv2d(x, weight: weight, bias: bias, geometry: g, plan: WinogradF2Plan.self,
                                  imagesPerChunk: imagesPerChunk)
        case .im2col, .automatic:
            break
        }
        let chunk = g.imagesPerChunk(override: imagesPerChunk)
        let n = chunk * g.outHW
        let needCols = !(g.isPointwise && chunk == 1)
        var cols = needCols ? [Float](unsafeUninitializedCapacity: g.patch * n) { _, c in c = g.patch * n } : []
        var staging = chunk > 1 ? [Float](unsafeUninitializedCapacity: g.outC * n) { _, c in c = g.outC * n } : []
        return Tensor(uninitializedShape: [g.batch, g.outC, g.outH, g.outW]) { out in
            x.data.withUnsafeBufferPointer { px in
            weight.data.withUnsafeBufferPointer { pw in
            cols.withUnsafeMutableBufferPointer { pcols in
            staging.withUnsafeMutableBufferPointer { pstage in
                var b0 = 0
                while b0 < g.batch {
                    let bc = Swift.min(chunk, g.batch - b0)
                    let cn = bc * g.outHW
                    let colsPtr: UnsafePointer<Float>
                    if needCols {
                        im2col(px.baseAddress!, g, images: b0..<(b0 + bc), into: pcols.baseAddress!)
                        colsPtr = UnsafePointer(pcols.baseAddress!)
                    } else {
                        colsPtr = px.baseAddress! + b0 * g.inC * g.inHW
                    }
                    if bc == 1 && chunk == 1 {
                        let dst = out.baseAddress! + b0 * g.outC * g.outHW
                        sgemmParallel(m: g.outC, n: cn, k: g.patch, a: pw.baseAddress!, lda: g.patch,
                              b: colsPtr, ldb: cn, c: dst, ldc: cn)
                        if let bias { addBiasRows(dst, rows: g.outC, cols: g.outHW, bias: bias) }
                    } else {
                        sgemmParallel(m: g.outC, n: cn, k: g.patch, a: pw.baseAddress!, lda: g.patch,
                              b: colsPtr, ldb: cn, c: pstage.baseAddress!, ldc: cn)
                        scatterChunk(pstage.baseAddress!, g, images: b0..<(b0 + bc), into: out.baseAddress!,
                                     bias: bias)
                    }
                    b0 += bc
                }
            }
            }
            }
            }
        }
    }

    /// Backward of `conv2d`. dy: [B, Cout, Ho, Wo]; x: the forward input. dW = dy · cols^T and
    /// dx = col2im(W^T · dy) per chunk of images; the im2col matrix is recomputed rather than kept.
    public static func conv2dBackward(_ dy: Tensor, input x: Tensor, weight: Tensor, hasBias: Bool,
                                      stride: Int = 1, padding: Int = 0, paddingEnd: Int? = nil,
                                      needs: GradientNeeds = .all) -> LayerGradients {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("conv2d bwd \(weight.shape[2])x\(weight.shape[3]) s\(stride) \(weight.shape[1])->\(weight.shape[0]) @\(x.shape[2])", profileMark) }
        return conv2dBackward(dy, input: x, weight: weight, hasBias: hasBias, stride: stride, padding: padding,
                       paddingEnd: paddingEnd, needs: needs, imagesPerChunk: nil)
    }

    static func conv2dBackward(_ dy: Tensor, input x: Tensor, weight: Tensor, hasBias: Bool,
                               stride: Int, padding: Int, paddingEnd: Int? = nil, needs: GradientNeeds,
                               algorithm: ConvAlgorithm = .automatic, imagesPerChunk: Int?) -> LayerGradients {
        ComputeThreads.ensureConfigured()
        let g = ConvGeometry(input: x.shape, weight: weight.shape, stride: stride, padding: padding,
                             paddingEnd: paddingEnd)
        precondition(dy.shape == [g.batch, g.outC, g.outH, g.outW],
                     "conv2dBackward: gradient \(dy.shape), expected \([g.batch, g.outC, g.outH, g.outW])")
        let wantInput = needs.contains(.input), wantParams = needs.contains(.parameters)
        var grads = LayerGradients()
        if !wantInput && !wantParams { return grads }
        // With parameter gradients dU is a fresh positions x Cout x Cin buffer whatever the cache holds.
        switch algorithm.resolved(for: g, paddingEnd: paddingEnd,
                                  cachedTransform: { !wantParams && cachesWinogradTransform(weight, g, positions: $0) }) {
        case .winogradF4:
            return winogradConv2dBackward(dy, input: x, weight: weight, hasBias: hasBias, geometry: g, needs: needs,
                                          plan: WinogradF4Plan.self, imagesPerChunk: imagesPerChunk)
        case .winogradF2:
            return winogradConv2dBackward(dy, input: x, weight: weight, hasBias: hasBias, geometry: g, needs: needs,
                                          plan: WinogradF2Plan.self, imagesPerChunk: imagesPerChunk)
        case .im2col, .automatic:
            break
        }
        let chunk = g.imagesPerChunk(override: imagesPerChunk)
        let n = chunk * g.outHW
        let direct = g.isPointwise && chunk == 1
        // cols: im2col of x for dW; dcols: W^T dy before col2im for dx. The pointwise single-image case
        // reads x and writes dx directly.
        var cols = wantParams && !direct ? [Float](unsafeUninitializedCapacity: g.patch * n) { _, c in c = g.patch * n } : []
        var dcols = wantInput && !direct ? [Float](unsafeUninitializedCapacity: g.patch * n) { _, c in c = g.patch * n } : []
        var staging = chunk > 1 ? [Float](unsafeUninitializedCapacity: g.outC * n) { _, c in c = g.outC * n } : []
        var dx = wantInput ? [Float](repeating: 0, count: x.count) : []
        var dw = wantParams ? [Float](unsafeUninitializedCapacity: weight.count) { _, c in c = weight.count } : []
        x.data.withUnsafeBufferPointer { px in
        dy.data.withUnsafeBufferPointer { pdy in
        weight.data.withUnsafeBufferPointer { pw in
        cols.withUnsafeMutableBufferPointer { pcols in
        dcols.withUnsafeMutableBufferPointer { pdcols in
        staging.withUnsafeMutableBufferPointer { pstage in
        dx.withUnsafeMutableBufferPointer { pdx in
        dw.withUnsafeMutableBufferPointer { pdw in
            var b0 = 0
            while b0 < g.batch {
                let bc = Swift.min(chunk, g.batch - b0)
                let cn = bc * g.outHW
                let dyc: UnsafePointer<Float>
                if chunk == 1 {
                    dyc = pdy.baseAddress! + b0 * g.outC * g.outHW
                } else {
                    gatherChunk(pdy.baseAddress!, g, images: b0..<(b0 + bc), into: pstage.baseAddress!)
                    dyc = UnsafePointer(pstage.baseAddress!)
                }
                if wantParams {
                    let colsPtr: UnsafePointer<Float>
                    if direct {
                        colsPtr = px.baseAddress! + b0 * g.inC * g.inHW
                    } else {
                        im2col(px.baseAddress!, g, images: b0..<(b0 + bc), into: pcols.baseAddress!)
                        colsPtr = UnsafePointer(pcols.baseAddress!)
                    }
                    sgemmParallel(transB: true, m: g.outC, n: g.patch, k: cn, a: dyc, lda: cn, b: colsPtr, ldb: cn,
                          beta: b0 == 0 ? 0 : 1, c: pdw.baseAddress!, ldc: g.patch)
                }
                if wantInput {
                    if direct {
                        sgemmParallel(transA: true, m: g.patch, n: cn, k: g.outC, a: pw.baseAddress!, lda: g.patch,
                              b: dyc, ldb: cn, c: pdx.baseAddress! + b0 * g.inC * g.inHW, ldc: cn)
                    } else {
                        sgemmParallel(transA: true, m: g.patch, n: cn, k: g.outC, a: pw.baseAddress!, lda: g.patch,
                              b: dyc, ldb: cn, c: pdcols.baseAddress!, ldc: cn)
                        col2im(pdcols.baseAddress!, g, images: b0..<(b0 + bc), into: pdx.baseAddress!)
                    }
                }
                b0 += bc
            }
        }
        }
        }
        }
        }
        }
        }
        }
        if wantInput { grads.input = Tensor(shape: x.shape, data: dx) }
        if wantParams {
            grads.weight = Tensor(shape: weight.shape, data: dw)
            if hasBias { grads.bias = channelSums(dy) }
        }
        return grads
    }

    /// Sum over batch and spatial positions per channel of a [B, C, ...] tensor: the bias gradient of a
    /// per-channel bias.
    static func channelSums(_ t: Tensor) -> Tensor {
        let (b, c) = (t.shape[0], t.shape[1])
        let inner = t.count / Swift.max(1, b * c)
        // Split over channels across the cores (each channel's sum is its own, in the same order as serially).
        return Tensor(uninitializedShape: [c]) { out in
            t.data.withUnsafeBufferPointer { p in
                Parallel.forRanges(c, grain: Swift.max(1, 16384 / Swift.max(1, b * inner))) { channels in
                    for ch in channels {
                        var sum = 0.0
                        for n in 0..<b { sum += Double(VectorMath.sum(p.baseAddress! + (n * c + ch) * inner, count: inner)) }
                        out[ch] = Float(sum)
                    }
                }
            }
        }
    }

    /// Adds bias[r] to every element of row r of a rows x cols matrix.
    static func addBiasRows(_ p: UnsafeMutablePointer<Float>, rows: Int, cols: Int, bias: Tensor) {
        bias.data.withUnsafeBufferPointer { pb in
            Parallel.forRanges(rows, grain: Swift.max(1, 16384 / Swift.max(1, cols))) { range in
                for r in range { VectorMath.kernels.affine(p + r * cols, p + r * cols, cols, 1, pb[r]) }
            }
        }
    }

    /// Writes the [Cout, bc*HW] sgemm result of a chunk into NCHW output (plus bias).
    static func scatterChunk(_ src: UnsafeMutablePointer<Float>, _ g: ConvGeometry, images: Range<Int>,
                             into out: UnsafeMutablePointer<Float>, bias: Tensor?) {
        let bc = images.count, hw = g.outHW
        let biasData = bias?.data ?? []
        biasData.withUnsafeBufferPointer { pb in
            Parallel.forRanges(g.outC, grain: Swift.max(1, 16384 / Swift.max(1, bc * hw))) { range in
                for co in range {
                    let v: Float = pb.isEmpty ? 0 : pb[co]
                    for i in 0..<bc {
                        let s = src + co * bc * hw + i * hw
                        let d = out + ((images.lowerBound + i) * g.outC + co) * hw
                        for j in 0..<hw { d[j] = s[j] + v }
                    }
                }
            }
        }
    }

    /// Reads the NCHW output gradient of a chunk into [Cout, bc*HW].
    static func gatherChunk(_ src: UnsafePointer<Float>, _ g: ConvGeometry, images: Range<Int>,
                            into dst: UnsafeMutablePointer<Float>) {
        let bc = images.count, hw = g.outHW
        Parallel.forRanges(g.outC, grain: Swift.max(1, 16384 / Swift.max(1, bc * hw))) { range in
            for co in range {
                for i in 0..<bc {
                    (dst + co * bc * hw + i * hw)
                        .update(from: src + ((images.lowerBound + i) * g.outC + co) * hw, count: hw)
                }
            }
        }
    }

    /// im2col for a chunk of images: row r = (c, ki, kj) of the [Cin*kh*kw, bc*Ho*Wo] matrix holds
    /// x[b, c, oy*s - p + ki, ox*s - p + kj] (0 outside the image) at column (b - first)*Ho*Wo + oy*Wo + ox.
    static func im2col(_ x: UnsafePointer<Float>, _ g: ConvGeometry, images: Range<Int>,
                       into cols: UnsafeMutablePointer<Float>) {
        let bc = images.count, ohw = g.outHW, ncol = bc * ohw
        let kk = g.kh * g.kw
        Parallel.forRanges(g.patch, grain: Swift.max(1, 8192 / Swift.max(1, ncol))) { rows in
            for r in rows {
                let c = r / kk, ki = (r / g.kw) % g.kh, kj = r % g.kw
                // Output columns whose input column stays inside the image: 0 <= ox*s - p + kj < W.
                let oxLo = Swift.max(0, (g.padding - kj + g.stride - 1) / g.stride)
                let oxHi = Swift.min(g.outW, (g.width + g.padding - kj + g.stride - 1) / g.stride)
                for i in 0..<bc {
                    let src = x + ((images.lowerBound + i) * g.inC + c) * g.inHW
                    let dstImg = cols + r * ncol + i * ohw
                    for oy in 0..<g.outH {
                        let dst = dstImg + oy * g.outW
                        let iy = oy * g.stride - g.padding + ki
                        if iy < 0 || iy >= g.height || oxLo >= oxHi {
                            dst.update(repeating: 0, count: g.outW)
                            continue
                        }
                        let srcRow = src + iy * g.width
                        if oxLo > 0 { dst.update(repeating: 0, count: oxLo) }
                        if g.stride == 1 {
                            (dst + oxLo).update(from: srcRow + (oxLo - g.padding + kj), count: oxHi - oxLo)
                        } else {
                            for ox in oxLo..<oxHi { dst[ox] = srcRow[ox * g.stride - g.padding + kj] }
                        }
                        if oxHi < g.outW { (dst + oxHi).update(repeating: 0, count: g.outW - oxHi) }
                    }
                }
            }
        }
    }

    /// col2im for a chunk: adds each element of the [Cin*kh*kw, bc*Ho*Wo] matrix back onto the input
    /// position it was read from. Work is split by input channel, so no two threads write one element.
    static func col2im(_ cols: UnsafePointer<Float>, _ g: ConvGeometry, images: Range<Int>,
                       into dx: UnsafeMutablePointer<Float>) {
        let bc = images.count, ohw = g.outHW, ncol = bc * ohw
        let kk = g.kh * g.kw
        Parallel.forRanges(g.inC, grain: Swift.max(1, 8192 / Swift.max(1, kk * ncol))) { channels in
            for c in channels {
                for q in 0..<kk {
                    let ki = q / g.kw, kj = q % g.kw
                    let r = c * kk + q
                    let oxLo = Swift.max(0, (g.padding - kj + g.stride - 1) / g.stride)
                    let oxHi = Swift.min(g.outW, (g.width + g.padding - kj + g.stride - 1) / g.stride)
                    if oxLo >= oxHi { continue }
                    for i in 0..<bc {
                        let dstImg = dx + ((images.lowerBound + i) * g.inC + c) * g.inHW
                        let srcImg = cols + r * ncol + i * ohw
                        for oy in 0..<g.outH {
                            let iy = oy * g.stride - g.padding + ki
                            if iy < 0 || iy >= g.height { continue }
                            let s = srcImg + oy * g.outW
                            let d = dstImg + iy * g.width
                            if g.stride == 1 {
                                let off = kj - g.padding
                                for ox in oxLo..<oxHi { d[ox + off] += s[ox] }
                            } else {
                                for ox in oxLo..<oxHi { d[ox * g.stride - g.padding + kj] += s[ox] }
                            }
                        }
                    }
                }
            }
        }
    }
}
