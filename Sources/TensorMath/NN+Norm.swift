/// Per-group (or per-row) statistics a normalization's forward computed and its backward reuses.
public struct NormStatistics: Sendable {
    /// Mean of each normalized set: [B * groups] for GroupNorm, [rows] for LayerNorm.
    public var mean: [Float]
    /// 1 / sqrt(variance + eps) of each set (biased variance, as torch).
    public var rstd: [Float]
}

extension NN {
    /// `torch.nn.GroupNorm`: x [B, C, ...] with C divisible by `groups`; weight and bias [C] or nil
    /// (not affine). Normalizes each (batch, group) over its C/groups channels and all spatial positions.
    /// A pruned layer that keeps a fixed channels-per-group passes `groups: C / channelsPerGroup`.
    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?,
                                 eps: Float) -> (output: Tensor, stats: NormStatistics) {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("groupNorm", profileMark) }
        return groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, thenSiLU: false)
    }

    /// silu(groupNorm(x)) in one pass over the output, for inference (a frozen model, a teacher): the
    /// normalized values are never stored. A training forward needs them for SiLU's backward, so it
    /// calls `groupNorm` and `silu`.
    public static func groupNormSiLU(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float) -> Tensor {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("groupNorm+silu", profileMark) }
        return groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, thenSiLU: true).output
    }

    static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float,
                          thenSiLU: Bool) -> (output: Tensor, stats: NormStatistics) {
        precondition(x.rank >= 2 && groups > 0 && x.shape[1] % groups == 0,
                     "groupNorm: \(x.shape[1]) channels do not split into \(groups) groups")
        let (b, c) = (x.shape[0], x.shape[1])
        let inner = x.count / Swift.max(1, b * c)
        let cpg = c / groups
        if let weight { precondition(weight.shape == [c], "groupNorm: weight \(weight.shape) for \(c) channels") }
        if let bias { precondition(bias.shape == [c], "groupNorm: bias \(bias.shape) for \(c) channels") }
        let sets = b * groups, setSize = cpg * inner
        var mean = [Float](repeating: 0, count: sets)
        var rstd = [Float](repeating: 0, count: sets)
        let gamma = weight?.data ?? [], beta = bias?.data ?? []
        let y = Tensor(uninitializedShape: x.shape) { out in
            x.data.withUnsafeBufferPointer { px in
            gamma.withUnsafeBufferPointer { pg in
            beta.withUnsafeBufferPointer { pb in
            mean.withUnsafeMutableBufferPointer { pm in
            rstd.withUnsafeMutableBufferPointer { pr in
                Parallel.forRanges(sets, grain: Swift.max(1, 16384 / Swift.max(1, setSize))) { range in
                    for s in range {
                        let base = px.baseAddress! + s * setSize
                        let (m, r) = meanAndRstd(base, count: setSize, eps: eps)
                        pm[s] = m
                        pr[s] = r
                        let g0 = (s % groups) * cpg
                        for ch in 0..<cpg {
                            let scale = r * (pg.isEmpty ? 1 : pg[g0 + ch])
                            let shift = (pb.isEmpty ? 0 : pb[g0 + ch]) - m * scale
                            let step = thenSiLU ? VectorMath.kernels.affineSiLU : VectorMath.kernels.affine
                            step(base + ch * inner, out.baseAddress! + s * setSize + ch * inner, inner, scale, shift)
                        }
                    }
                }
            }
            }
            }
            }
            }
        }
        return (y, NormStatistics(mean: mean, rstd: rstd))
    }

    /// Backward of `groupNorm`. `affine` says whether the forward had weight and bias (both or neither,
    /// as torch); pass the forward's weight when it had one. Parameter gradients are [C].
    public static func groupNormBackward(_ dy: Tensor, input x: Tensor, stats: NormStatistics, groups: Int,
                                         weight: Tensor?, needs: GradientNeeds = .all) -> LayerGradients {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("groupNorm bwd", profileMark) }
        precondition(dy.shape == x.shape, "groupNormBackward: gradient \(dy.shape) vs input \(x.shape)")
        let (b, c) = (x.shape[0], x.shape[1])
        let inner = x.count / Swift.max(1, b * c)
        let cpg = c / groups
        let sets = b * groups, setSize = cpg * inner
        let wantInput = needs.contains(.input), wantParams = needs.contains(.parameters) && weight != nil
        let gamma = weight?.data ?? []
        // Per (batch, channel) partial sums of dy * xhat and dy; reduced over the batch afterwards.
        var partialGamma = [Float](repeating: 0, count: wantParams ? b * c : 0)
        var partialBeta = [Float](repeating: 0, count: wantParams ? b * c : 0)
        var dx = wantInput ? [Float](unsafeUninitializedCapacity: x.count) { _, n in n = x.count } : []
        x.data.withUnsafeBufferPointer { px in
        dy.data.withUnsafeBufferPointer { pdy in
        gamma.withUnsafeBufferPointer { pg in
        stats.mean.withUnsafeBufferPointer { pm in
        stats.rstd.withUnsafeBufferPointer { pr in
        partialGamma.withUnsafeMutableBufferPointer { ppg in
        partialBeta.withUnsafeMutableBufferPointer { ppb in
        dx.withUnsafeMutableBufferPointer { pdx in
            Parallel.forRanges(sets, grain: Swift.max(1, 8192 / Swift.max(1, setSize))) { range in
                for s in range {
                    let m = pm[s], r = pr[s]
                    let g0 = (s % groups) * cpg
                    let n = s / groups
                    // sum over the set of dxhat and dxhat * xhat, with dxhat = dy * gamma.
                    var sumD: Double = 0, sumDX: Double = 0
                    for ch in 0..<cpg {
                        let xs = px.baseAddress! + s * setSize + ch * inner
                        let ds = pdy.baseAddress! + s * setSize + ch * inner
                        var (sd, sdx) = VectorMath.sumAndShiftedDot(ds, xs, count: inner, shift: m)
                        sdx *= r
                        if wantParams {
                            ppg[n * c + g0 + ch] = sdx
                            ppb[n * c + g0 + ch] = sd
                        }
                        let gch: Float = pg.isEmpty ? 1 : pg[g0 + ch]
                        sumD += Double(sd * gch)
                        sumDX += Double(sdx * gch)
                    }
                    guard wantInput else { continue }
                    let meanD = Float(sumD / Double(setSize)), meanDX = Float(sumDX / Double(setSize))
                    for ch in 0..<cpg {
                        let gch: Float = pg.isEmpty ? 1 : pg[g0 + ch]
                        let xs = px.baseAddress! + s * setSize + ch * inner
                        let ds = pdy.baseAddress! + s * setSize + ch * inner
                        let dd = pdx.baseAddress! + s * setSize + ch * inner
                        // dx = r * (dy * gamma - meanD - xhat * meanDX), xhat = (x - m) * r.
                        let (a, c) = (r * gch, r * meanD - r * r * m * meanDX)
                        let bx = r * r * meanDX
                        VectorMath.kernels.normInputGradient(ds, xs, dd, inner, a, bx, c)
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
        var grads = LayerGradients()
        if wantInput { grads.input = Tensor(shape: x.shape, data: dx) }
        if wantParams {
            var dg = [Float](repeating: 0, count: c), db = [Float](repeating: 0, count: c)
            for n in 0..<b {
                for ch in 0..<c {
                    dg[ch] += partialGamma[n * c + ch]
                    db[ch] += partialBeta[n * c + ch]
                }
            }
            grads.weight = Tensor(shape: [c], data: dg)
            grads.bias = Tensor(shape: [c], data: db)
        }
        return grads
    }

    /// `torch.nn.LayerNorm` over the last dimension: x [..., D]; weight and bias [D] or nil.
    public static func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?,
                                 eps: Float) -> (output: Tensor, stats: NormStatistics) {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("layerNorm", profileMark) }
        let d = x.shape.last ?? 1
        let rows = x.count / Swift.max(1, d)
        if let weight { precondition(weight.shape == [d], "layerNorm: weight \(weight.shape) for last dim \(d)") }
        if let bias { precondition(bias.shape == [d], "layerNorm: bias \(bias.shape) for last dim \(d)") }
        var mean = [Float](repeating: 0, count: rows)
        var rstd = [Float](repeating: 0, count: rows)
        let gamma = weight?.data ?? [], beta = bias?.data ?? []
        let y = Tensor(uninitializedShape: x.shape) { out in
            x.data.withUnsafeBufferPointer { px in
            gamma.withUnsafeBufferPointer { pg in
            beta.withUnsafeBufferPointer { pb in
            mean.withUnsafeMutableBufferPointer { pm in
            rstd.withUnsafeMutableBufferPointer { pr in
                Parallel.forRanges(rows, grain: Swift.max(1, 8192 / Swift.max(1, d))) { range in
                    for row in range {
                        let src = px.baseAddress! + row * d
                        let dst = out.baseAddress! + row * d
                        let (m, r) = meanAndRstd(src, count: d, eps: eps)
                        pm[row] = m
                        pr[row] = r
                        for i in 0..<d {
                            let xhat = (src[i] - m) * r
                            dst[i] = xhat * (pg.isEmpty ? 1 : pg[i]) + (pb.isEmpty ? 0 : pb[i])
                        }
                    }
                }
            }
            }
            }
            }
            }
        }
        return (y, NormStatistics(mean: mean, rstd: rstd))
    }

    /// Backward of `layerNorm`; parameter gradients are [D] (only when the forward had a weight).
    public static func layerNormBackward(_ dy: Tensor, input x: Tensor, stats: NormStatistics, weight: Tensor?,
                                         needs: GradientNeeds = .all) -> LayerGradients {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("layerNorm bwd", profileMark) }
        precondition(dy.shape == x.shape, "layerNormBackward: gradient \(dy.shape) vs input \(x.shape)")
        let d = x.shape.last ?? 1
        let rows = x.count / Swift.max(1, d)
        let wantInput = needs.contains(.input), wantParams = needs.contains(.parameters) && weight != nil
        let gamma = weight?.data ?? []
        let workers = Swift.max(1, Swift.min(ComputeThreads.cores, rows))
        var partialGamma = [Float](repeating: 0, count: wantParams ? workers * d : 0)
        var partialBeta = [Float](repeating: 0, count: wantParams ? workers * d : 0)
        var dx = wantInput ? [Float](unsafeUninitializedCapacity: x.count) { _, n in n = x.count } : []
        x.data.withUnsafeBufferPointer { px in
        dy.data.withUnsafeBufferPointer { pdy in
        gamma.withUnsafeBufferPointer { pg in
        stats.mean.withUnsafeBufferPointer { pm in
        stats.rstd.withUnsafeBufferPointer { pr in
        partialGamma.withUnsafeMutableBufferPointer { ppg in
        partialBeta.withUnsafeMutableBufferPointer { ppb in
        dx.withUnsafeMutableBufferPointer { pdx in
            Parallel.forRanges(workers) { ws in
                for w in ws {
                    let lo = rows * w / workers, hi = rows * (w + 1) / workers
                    // dy * gamma of the current row.
                    var scaled = [Float](repeating: 0, count: d)
                    scaled.withUnsafeMutableBufferPointer { t in
                        for row in lo..<hi {
                            let m = pm[row], r = pr[row]
                            let xs = px.baseAddress! + row * d
                            let ds = pdy.baseAddress! + row * d
                            let gdy: UnsafePointer<Float>
                            if pg.isEmpty {
                                gdy = ds
                            } else {
                                VectorMath.apply(ds, pg.baseAddress!, t.baseAddress!, count: d) { $0 * $1 }
                                gdy = UnsafePointer(t.baseAddress!)
                            }
                            let sumD = VectorMath.sum(gdy, count: d)
                            let sumDX = r * VectorMath.sumAndShiftedDot(gdy, xs, count: d, shift: m).1
                            if wantParams {
                                for i in 0..<d {
                                    ppg[w * d + i] += ds[i] * (xs[i] - m) * r
                                    ppb[w * d + i] += ds[i]
                                }
                            }
                            guard wantInput else { continue }
                            let meanD = sumD / Float(d), meanDX = sumDX / Float(d)
                            let dd = pdx.baseAddress! + row * d
                            for i in 0..<d {
                                let xhat = (xs[i] - m) * r
                                let g: Float = pg.isEmpty ? 1 : pg[i]
                                dd[i] = r * (ds[i] * g - meanD - xhat * meanDX)
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
        }
        var grads = LayerGradients()
        if wantInput { grads.input = Tensor(shape: x.shape, data: dx) }
        if wantParams {
            var dg = [Float](repeating: 0, count: d), db = [Float](repeating: 0, count: d)
            for w in 0..<workers {
                for i in 0..<d {
                    dg[i] += partialGamma[w * d + i]
                    db[i] += partialBeta[w * d + i]
                }
            }
            grads.weight = Tensor(shape: [d], data: dg)
            grads.bias = Tensor(shape: [d], data: db)
        }
        return grads
    }

    /// Two-pass mean and 1/sqrt(biased variance + eps), accumulated in Double across blocks of 1024.
    @inline(__always)
    static func meanAndRstd(_ p: UnsafePointer<Float>, count n: Int, eps: Float) -> (Float, Float) {
        guard n > 0 else { return (0, 1 / eps.squareRoot()) }
        var total: Double = 0
        var i = 0
        while i < n {
            let len = Swift.min(1024, n - i)
            total += Double(VectorMath.sum(p + i, count: len))
            i += len
        }
        let m = Float(total / Double(n))
        var sq: Double = 0
        i = 0
        while i < n {
            let len = Swift.min(1024, n - i)
            sq += Double(VectorMath.sumOfSquares(p + i, count: len, shift: m))
            i += len
        }
        let variance = Float(sq / Double(n))
        return (m, 1 / (variance + eps).squareRoot())
    }
}
