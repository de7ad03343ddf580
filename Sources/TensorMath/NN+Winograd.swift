/// The transforms a Winograd variant provides; `NN.winogradConv2d` and its backward drive any of them.
protocol WinogradTransforms {
    init(_ g: ConvGeometry)
    var g: ConvGeometry { get }
    /// Positions ξ per tile (a^2 for a x a input tiles): the number of sgemms.
    static var positions: Int { get }
    var tilesPerImage: Int { get }
    var weightStride: Int { get }
    var imagesPerChunk: Int { get }
    func transformWeights(_ w: UnsafePointer<Float>, into u: UnsafeMutablePointer<Float>)
    func weightGradient(_ du: UnsafePointer<Float>, into dw: UnsafeMutablePointer<Float>)
    func transformInput(_ src: UnsafePointer<Float>, channels: Int, images: Range<Int>, into v: UnsafeMutablePointer<Float>)
    func transformOutput(_ m: UnsafePointer<Float>, bias: UnsafeBufferPointer<Float>, images: Range<Int>,
                         into y: UnsafeMutablePointer<Float>)
    func transformOutputGradient(_ dy: UnsafePointer<Float>, images: Range<Int>, into dm: UnsafeMutablePointer<Float>)
    func transformInputGradient(_ dv: UnsafePointer<Float>, images: Range<Int>, into dx: UnsafeMutablePointer<Float>)
}

/// Distance between consecutive ξ matrices of `rows` rows and `tiles` columns. The 16 or 36 matrices are
/// written and read together, one element from each per tile; without the extra 16 floats their distance
/// is a multiple of 4 KB whenever rows * tiles is, and all the streams share one L1 cache set.
func winogradMatrixStride(rows: Int, tiles: Int) -> Int { rows * tiles + 16 }

/// Weight transforms run on 8 (Cout, Cin) pairs at a time, one per SIMD8 lane: the transformed
/// matrices U[ξ][co][ci] then get whole-vector stores (their rows are contiguous in the pair index)
/// instead of one strided scalar store per pair and ξ.
enum PairLanes {
    typealias V = SIMD8<Float>

    /// Calls `body(first, count)` for blocks of up to 8 consecutive pairs, split over the cores.
    static func forEachBlock(_ pairs: Int, _ body: (Int, Int) -> Void) {
        let blocks = (pairs + 7) / 8
        Parallel.forRanges(blocks, grain: 64) { range in
            for block in range { body(block * 8, Swift.min(8, pairs - block * 8)) }
        }
    }

    /// Lane l = p[(first + l) * stride] for l < count, 0 beyond.
    @inline(__always)
    static func gather(_ p: UnsafePointer<Float>, first: Int, count: Int, stride: Int) -> V {
        if count == 8 {
            let q = p + first * stride
            return V(q[0], q[stride], q[2 * stride], q[3 * stride], q[4 * stride], q[5 * stride], q[6 * stride],
                     q[7 * stride])
        }
        var v = V(repeating: 0)
        for l in 0..<count { v[l] = p[(first + l) * stride] }
        return v
    }

    /// p[(first + l) * stride] = lane l for l < count.
    @inline(__always)
    static func scatter(_ v: V, _ p: UnsafeMutablePointer<Float>, first: Int, count: Int, stride: Int) {
        if count == 8 {
            let q = p + first * stride
            q[0] = v[0]; q[stride] = v[1]; q[2 * stride] = v[2]; q[3 * stride] = v[3]
            q[4 * stride] = v[4]; q[5 * stride] = v[5]; q[6 * stride] = v[6]; q[7 * stride] = v[7]
            return
        }
        for l in 0..<count { p[(first + l) * stride] = v[l] }
    }

    /// p[first ..< first + count] = the first `count` lanes (one vector store for a full block).
    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>, first: Int, count: Int) {
        if count == 8 {
            UnsafeMutableRawPointer(p + first).storeBytes(of: v, as: V.self)
        } else {
            for l in 0..<count { p[first + l] = v[l] }
        }
    }

    /// Lanes p[first ..< first + count].
    @inline(__always)
    static func load(_ p: UnsafePointer<Float>, first: Int, count: Int) -> V {
        count == 8 ? UnsafeRawPointer(p + first).loadUnaligned(as: V.self) : gather(p, first: first, count: count, stride: 1)
    }
}

/// Which convolution algorithm to run. Tests pin one; the public API always uses `automatic`.
enum ConvAlgorithm {
    case automatic, im2col, winogradF2, winogradF4

    /// What `automatic` stands for at this geometry: F(4x4) on large maps, F(2x2) on smaller ones,
    /// im2col for every other kernel, stride or padding, and for Winograd whose per-call weight transform
    /// would cost more than it saves (`weightTransformPays`). `cachedTransform(positions)` says whether
    /// the transform of this weight comes from a `WinogradWeightCache` (then it costs nothing per call).
    func resolved(for g: ConvGeometry, paddingEnd: Int?,
                  cachedTransform: (Int) -> Bool = { _ in false }) -> ConvAlgorithm {
        guard self == .automatic else { return self }
        if WinogradF4Plan.applies(g, paddingEnd: paddingEnd),
           cachedTransform(WinogradF4Plan.positions) || Self.weightTransformPays(g, positions: WinogradF4Plan.positions) {
            return .winogradF4
        }
        if WinogradF2Plan.applies(g, paddingEnd: paddingEnd),
           cachedTransform(WinogradF2Plan.positions) || Self.weightTransformPays(g, positions: WinogradF2Plan.positions) {
            return .winogradF2
        }
        return .im2col
    }

    /// Bytes from which glibc serves an allocation with fresh pages (`ComputeThreads`' M_MMAP_THRESHOLD).
    static let freshPageBytes = 64 << 20

    /// Whether transforming the weight at every call pays. The transformed weights are positions x Cout x
    /// Cin floats; from 64 MB on they are fresh pages at every call, and writing them costs ~7 ns per
    /// float (page faults included) against ~0.3 ns below (TensorMathBench, SD-1.5 batch-1 shapes:
    /// 1280->1280 on 16x16, F(4x4) 390 ms, F(2x2) 200 ms, im2col 65-80 ms; 640->640 on 32x32, 59 MB,
    /// F(4x4) 21-35 ms against im2col 83-90 ms). Per (co, ci) pair im2col costs ~18 P x 10 ps for P output
    /// pixels per call, so a faulting transform pays only from P >= ~40 x positions: F(4x4) from 1440
    /// pixels per call, F(2x2) from 640 (SD's 1280-channel convolutions at batch 1 take im2col).
    static func weightTransformPays(_ g: ConvGeometry, positions: Int) -> Bool {
        let bytes = positions * (g.outC * g.inC + 16) * MemoryLayout<Float>.stride
        return bytes < freshPageBytes || g.batch * g.outH * g.outW >= 40 * positions
    }
}

extension NN {
    /// U for `weight` under `plan`: from the thread's `WinogradWeightCache` when one is set and holds
    /// (or has room for) it, else transformed now.
    static func weightTransform<Plan: WinogradTransforms>(_ weight: Tensor, plan: Plan) -> [Float] {
        let length = Plan.positions * plan.weightStride
        let make = { (w: UnsafePointer<Float>, u: UnsafeMutablePointer<Float>) in plan.transformWeights(w, into: u) }
        if let cache = winogradWeightCache,
           let u = cache.transformed(weight: weight.data, outChannels: plan.g.outC, positions: Plan.positions,
                                     length: length, make: make) {
            return u
        }
        return [Float](unsafeUninitializedCapacity: length) { buffer, n in
            weight.data.withUnsafeBufferPointer { make($0.baseAddress!, buffer.baseAddress!) }
            n = length
        }
    }

    static func winogradConv2d<Plan: WinogradTransforms>(_ x: Tensor, weight: Tensor, bias: Tensor?,
                                                         geometry g: ConvGeometry, plan _: Plan.Type,
                                                         imagesPerChunk: Int?) -> Tensor {
        let plan = Plan(g)
        let np = Plan.positions
        let chunk = Swift.max(1, Swift.min(g.batch, imagesPerChunk ?? plan.imagesPerChunk))
        let maxTiles = chunk * plan.tilesPerImage
        let us = plan.weightStride
        let vs = winogradMatrixStride(rows: g.inC, tiles: maxTiles)
        let ms = winogradMatrixStride(rows: g.outC, tiles: maxTiles)
        let u = weightTransform(weight, plan: plan)
        var v = [Float](unsafeUninitializedCapacity: np * vs) { _, n in n = np * vs }
        var m = [Float](unsafeUninitializedCapacity: np * ms) { _, n in n = np * ms }
        let biasData = bias?.data ?? []
        return Tensor(uninitializedShape: [g.batch, g.outC, g.outH, g.outW]) { out in
            x.data.withUnsafeBufferPointer { px in
            biasData.withUnsafeBufferPointer { pb in
            u.withUnsafeBufferPointer { pu in
            v.withUnsafeMutableBufferPointer { pv in
            m.withUnsafeMutableBufferPointer { pm in
                var b0 = 0
                while b0 < g.batch {
                    let images = b0..<Swift.min(g.batch, b0 + chunk)
                    let t = images.count * plan.tilesPerImage
                    let (cvs, cms) = (winogradMatrixStride(rows: g.inC, tiles: t),
                                      winogradMatrixStride(rows: g.outC, tiles: t))
                    plan.transformInput(px.baseAddress!, channels: g.inC, images: images, into: pv.baseAddress!)
                    Parallel.forRanges(np) { xis in
                        for xi in xis {
                            sgemm(m: g.outC, n: t, k: g.inC, a: pu.baseAddress! + xi * us, lda: g.inC,
                                  b: pv.baseAddress! + xi * cvs, ldb: t, c: pm.baseAddress! + xi * cms, ldc: t)
                        }
                    }
                    plan.transformOutput(pm.baseAddress!, bias: pb, images: images, into: out.baseAddress!)
                    b0 = images.upperBound
                }
            }
            }
            }
            }
            }
        }
    }

    static func winogradConv2dBackward<Plan: WinogradTransforms>(
        _ dy: Tensor, input x: Tensor, weight: Tensor, hasBias: Bool, geometry g: ConvGeometry,
        needs: GradientNeeds, plan _: Plan.Type, imagesPerChunk: Int?
    ) -> LayerGradients {
        let plan = Plan(g)
        let np = Plan.positions
        let chunk = Swift.max(1, Swift.min(g.batch, imagesPerChunk ?? plan.imagesPerChunk))
        let maxTiles = chunk * plan.tilesPerImage
        let wantInput = needs.contains(.input), wantParams = needs.contains(.parameters)
        let us = plan.weightStride
        let vs = winogradMatrixStride(rows: g.inC, tiles: maxTiles)
        let ms = winogradMatrixStride(rows: g.outC, tiles: maxTiles)
        var dm = [Float](unsafeUninitializedCapacity: np * ms) { _, n in n = np * ms }
        // V for dU, then reused for dV.
        var v = [Float](unsafeUninitializedCapacity: np * vs) { _, n in n = np * vs }
        // U (transformed weights) for dV; dU accumulates the weight gradient across chunks.
        let u = wantInput ? weightTransform(weight, plan: plan) : []
        var du = wantParams ? [Float](unsafeUninitializedCapacity: np * us) { _, n in n = np * us } : []
        var dw = wantParams ? [Float](unsafeUninitializedCapacity: weight.count) { _, n in n = weight.count } : []
        var dx = wantInput ? [Float](unsafeUninitializedCapacity: x.count) { _, n in n = x.count } : []
        x.data.withUnsafeBufferPointer { px in
        dy.data.withUnsafeBufferPointer { pdy in
        dm.withUnsafeMutableBufferPointer { pdm in
        v.withUnsafeMutableBufferPointer { pv in
        u.withUnsafeBufferPointer { pu in
        du.withUnsafeMutableBufferPointer { pdu in
        dw.withUnsafeMutableBufferPointer { pdw in
        dx.withUnsafeMutableBufferPointer { pdx in
            var b0 = 0
            while b0 < g.batch {
                let images = b0..<Swift.min(g.batch, b0 + chunk)
                let t = images.count * plan.tilesPerImage
                let (cvs, cms) = (winogradMatrixStride(rows: g.inC, tiles: t),
                                  winogradMatrixStride(rows: g.outC, tiles: t))
                plan.transformOutputGradient(pdy.baseAddress!, images: images, into: pdm.baseAddress!)
                if wantParams {
                    plan.transformInput(px.baseAddress!, channels: g.inC, images: images, into: pv.baseAddress!)
                    let beta: Float = b0 == 0 ? 0 : 1
                    Parallel.forRanges(np) { xis in
                        for xi in xis {
                            sgemm(transB: true, m: g.outC, n: g.inC, k: t, a: pdm.baseAddress! + xi * cms, lda: t,
                                  b: pv.baseAddress! + xi * cvs, ldb: t, beta: beta,
                                  c: pdu.baseAddress! + xi * us, ldc: g.inC)
                        }
                    }
                }
                if wantInput {
                    Parallel.forRanges(np) { xis in
                        for xi in xis {
                            sgemm(transA: true, m: g.inC, n: t, k: g.outC, a: pu.baseAddress! + xi * us, lda: g.inC,
                                  b: pdm.baseAddress! + xi * cms, ldb: t, c: pv.baseAddress! + xi * cvs, ldc: t)
                        }
                    }
                    plan.transformInputGradient(pv.baseAddress!, images: images, into: pdx.baseAddress!)
                }
                b0 = images.upperBound
            }
            if wantParams { plan.weightGradient(pdu.baseAddress!, into: pdw.baseAddress!) }
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
            grads.weight = Tensor(shape: weight.shape, data: dw)
            if hasBias { grads.bias = channelSums(dy) }
        }
        return grads
    }
}
