/// Weight-only quantization blocks as ONNX stores them: `MatMulNBits` (com.microsoft) for linear
/// layers, opset-21 `DequantizeLinear` for convolutions. Pure functions over row-major f32 weights; the
/// exporter writes their bytes as initializers and the reader turns them back into f32.
///
/// **MatMulNBits** reproduces onnxruntime 1.32's `MatMulNBitsQuantizer(model, bits, block_size,
/// is_symmetric=False)` (default RTN algorithm) byte for byte. That quantizer hands the MatMul's B
/// ([K, N]) to MLAS `BlockwiseQuantizer<float, block, bits, columnwise>::quantizeAndTranspose`, so one
/// block is `blockSize` consecutive inputs of one output; our [N, K] (out, in) weight's rows are B's
/// columns. Per block, in f32 and C++'s evaluation order:
/// - `min`, `max` over the block's values (the last block of an unpadded K only over the values that
///   exist), then `min = min(min, 0)`, `max = max(max, 0)` so zero is exact;
/// - `scale = (max - min) / (2^bits - 1)`; `zp = 0 - min / scale` (`min` when scale is 0), clamped to
///   [0, 2^bits - 1], else `roundf` (half away from zero);
/// - `q = clamp(roundf(v * (1 / scale) + zp), 0, 2^bits - 1)` (`1 / scale` is 0 when scale is 0), the
///   multiply and the add rounded separately. A subnormal scale's reciprocal is infinite: positive values
///   then give 2^bits - 1, negative ones 0, and zeros (0 × inf = NaN) 0, as the C++ cast gives on x86.
/// Layout: B is [N, kBlocks, blockSize * bits / 8] uint8, element k of a row in byte k / 2 (4 bits: low
/// nibble first), padding past K zero; scales [N, kBlocks] f32; zero points [N, kBlocks] (8 bits) or
/// [N, ceil(kBlocks / 2)] (4 bits, low nibble first, a missing odd block's nibble 8). Two of MLAS's
/// quirks are kept because the bytes must match: MLAS quantizes rows in pairs of blocks and reuses the
/// previous pair's high nibble for the last byte when K is odd (so that byte's high nibble holds the
/// quantized value of element K - 2 when it is in the same pair of blocks, else 0). Dequantization is
/// `Float(q - zp) * scale`, what ORT's MatMulNBits computes before its f32 dot products.
///
/// **DequantizeLinear** (our own rules, chosen so that `onnx.reference`'s QuantizeLinear with the same
/// scales reproduces our bytes): int8 per output channel (axis 0, symmetric, no zero point):
/// `scale = maxAbs / 127` (computed in f64, rounded to f32), `q = clamp(rint(w / scale), -128, 127)`
/// (round half to even, as QuantizeLinear rounds). Blocked UINT4 (axis 1, `blockSize` input channels per
/// block, asymmetric with a zero point): `min`, `max` as above, `scale = (max - min) / 15` (f64, rounded
/// to f32), `zp = clamp(rint(-min / scale), 0, 15)`, `q = clamp(rint(w / scale) + zp, 0, 15)`. A block or
/// channel of zeros (or one whose scale underflows to 0) gets scale 1 and zero point 0, so every stored
/// scale is positive and finite. Dequantization is `(Float(q) - Float(zp)) * scale`, as the ONNX spec,
/// onnx.reference and ORT compute it. Int4 weights plus their scales and zero points take
/// `0.125 + 1.125 / blockSize` of the f32 bytes for a weight whose input channels fill the blocks
/// (0.160 at block 32, 0.143 at 64, 0.134 at 128).
public enum ONNXQuantBlocks {
    /// One initializer's payload: its `raw_data` bytes, dims and element type.
    public struct Tensor: Sendable, Equatable {
        public var bytes: [UInt8]
        public var shape: [Int]
        public var dataType: ONNXDataType

        public init(bytes: [UInt8], shape: [Int], dataType: ONNXDataType) {
            self.bytes = bytes
            self.shape = shape
            self.dataType = dataType
        }
    }

    /// The three initializers of a `MatMulNBits` node and its attributes (`K`, `N`, `bits`, `block_size`).
    public struct MatMulNBitsWeight: Sendable, Equatable {
        /// `B`: uint8 [N, kBlocks, blockSize * bits / 8].
        public var packed: Tensor
        /// `scales`: f32 [N, kBlocks].
        public var scales: Tensor
        /// `zero_points`: uint8 [N, kBlocks] (8 bits) or [N, ceil(kBlocks / 2)] (4 bits).
        public var zeroPoints: Tensor
        public var n: Int
        public var k: Int
        public var bits: Int
        public var blockSize: Int
    }

    /// The initializers of a `DequantizeLinear` node and its attributes.
    public struct DequantizeLinearWeight: Sendable, Equatable {
        /// `x`: the quantized values with the weight's shape (INT8, or UINT4 packed two to a byte).
        public var quantized: Tensor
        /// `x_scale`: f32, [C] per axis or the weight's shape with `ceil(dim / blockSize)` on the axis.
        public var scale: Tensor
        /// `x_zero_point`, same shape and type as the scale's layout and `x`; nil means zero.
        public var zeroPoint: Tensor?
        public var axis: Int
        /// 0 for per-axis quantization (the attribute is then left out).
        public var blockSize: Int
    }

    /// Block sizes ORT's MLAS quantizer and `MatMulNBits` accept.
    public static let matMulNBitsBlockSizes: Set<Int> = [16, 32, 64, 128, 256]

    // MARK: - MatMulNBits

    /// Quantizes a [n, k] (out, in) row-major weight as onnxruntime's MatMulNBitsQuantizer does (see the
    /// type's doc comment for the rules). Throws `invalid-argument` for bits other than 4 or 8, a block
    /// size MLAS does not have, or a count that is not n × k, and `unsupported` for a non-finite weight
    /// or a block whose range overflows f32 (ORT would write an infinite scale and NaN weights).
    public static func matMulNBits(weight: [Float], n: Int, k: Int, bits: Int, blockSize: Int) throws(TensorFormatError) -> MatMulNBitsWeight {
        guard bits == 4 || bits == 8 else {
            throw TensorFormatError(.invalidArgument, "MatMulNBits takes 4 or 8 bits, not \(bits)")
        }
        guard matMulNBitsBlockSizes.contains(blockSize) else {
            throw TensorFormatError(.invalidArgument, "MatMulNBits block size \(blockSize) is not one of 16, 32, 64, 128, 256")
        }
        guard n > 0, k > 0, n.multipliedReportingOverflow(by: k).overflow == false, n * k == weight.count else {
            throw TensorFormatError(.invalidArgument, "a [\(n), \(k)] weight needs \(n) x \(k) values, not \(weight.count)")
        }
        let pack = 8 / bits
        let maxQ = Float((1 << bits) - 1)
        let mid = UInt8(1 << (bits - 1))
        let kBlocks = (k + blockSize - 1) / blockSize
        let blobSize = blockSize / pack
        let rowBytes = kBlocks * blobSize
        let zpColumns = (kBlocks + pack - 1) / pack
        var packed = [UInt8](repeating: 0, count: n * rowBytes)
        var scales = [Float](repeating: 0, count: n * kBlocks)
        var zeroPoints = [UInt8](repeating: 0, count: n * zpColumns)
        for row in 0..<n {
            let base = row * k
            // MLAS's thread block: `pack` quantization blocks of one column, sharing one zero-point byte.
            var start = 0
            while start < k {
                let end = min(start + blockSize * pack, k)
                var zp = [UInt8](repeating: mid, count: pack)
                for slot in 0..<pack {
                    let blockStart = start + slot * blockSize
                    let blockEnd = min(blockStart + blockSize, end)
                    guard blockStart < blockEnd else { continue }
                    var lo = Float.greatestFiniteMagnitude
                    var hi = -lo
                    for i in blockStart..<blockEnd {
                        let v = weight[base + i]
                        guard v.isFinite else {
                            throw TensorFormatError(.unsupported, "weight [\(row), \(i)] is \(v): MatMulNBits quantizes finite values only")
                        }
                        if v < lo { lo = v }
                        if v > hi { hi = v }
                    }
                    // std::min(lo, 0.0f) and std::max(hi, 0.0f), kept literal: they decide the sign of a zero.
                    lo = 0 < lo ? 0 : lo
                    hi = hi < 0 ? 0 : hi
                    let scale = (hi - lo) / maxQ
                    guard scale.isFinite else {
                        throw TensorFormatError(.unsupported, "row \(row), inputs \(blockStart)..<\(blockEnd): the block's range \(lo)...\(hi) overflows f32")
                    }
                    var zeroPoint = lo
                    if scale != 0 { zeroPoint = 0 - lo / scale }
                    if zeroPoint < 0 {
                        zp[slot] = 0
                    } else if zeroPoint > maxQ {
                        zp[slot] = UInt8(maxQ)
                    } else {
                        zp[slot] = UInt8(zeroPoint.rounded(.toNearestOrAwayFromZero))
                    }
                    scales[row * kBlocks + blockStart / blockSize] = scale
                }
                let zpIndex = row * zpColumns + (start / blockSize) / pack
                zeroPoints[zpIndex] = bits == 8 ? zp[0] : (zp[0] & 0xF) | (zp[1] << 4)
                var values = [UInt8](repeating: 0, count: pack)
                var i = start
                while i < end {
                    for slot in 0..<pack where i + slot < end {
                        let block = (i + slot) / blockSize
                        let scale = scales[row * kBlocks + block]
                        let reciprocal: Float = scale != 0 ? 1 / scale : 0
                        let product = weight[base + i + slot] * reciprocal
                        let shifted = product + Float(zp[block % pack])
                        let rounded = shifted.rounded(.toNearestOrAwayFromZero)
                        // A NaN (0 times the infinite reciprocal of a subnormal scale) converts to 0, as
                        // the C++ cast does on x86 and ARM.
                        values[slot] = rounded.isNaN ? 0 : UInt8(rounded < 0 ? 0 : (maxQ < rounded ? maxQ : rounded))
                    }
                    packed[row * rowBytes + i / pack] = bits == 8 ? values[0] : (values[0] & 0xF) | (values[1] << 4)
                    i += pack
                }
                start = end
            }
        }
        return MatMulNBitsWeight(
            packed: Tensor(bytes: packed, shape: [n, kBlocks, blobSize], dataType: .uint8),
            scales: Tensor(bytes: littleEndianBytes(scales), shape: [n, kBlocks], dataType: .float),
            zeroPoints: Tensor(bytes: zeroPoints, shape: [n, zpColumns], dataType: .uint8),
            n: n, k: k, bits: bits, blockSize: blockSize)
    }

    /// The [n, k] row-major f32 weight a `MatMulNBits` node multiplies by: `Float(q - zp) * scale`.
    /// `zeroPoints` nil means the symmetric default (2^(bits-1)). Every shape and byte count is checked
    /// against n, k, bits and the block size (`size-mismatch`), so hostile initializers cannot index
    /// past their bytes.
    public static func dequantizeMatMulNBits(packed: [UInt8], scales: [Float], zeroPoints: [UInt8]?,
                                             n: Int, k: Int, bits: Int, blockSize: Int) throws(TensorFormatError) -> [Float] {
        guard bits == 4 || bits == 8 else {
            throw TensorFormatError(.unsupported, "MatMulNBits with \(bits) bits (4 and 8 are read)")
        }
        guard blockSize >= 16, blockSize & (blockSize - 1) == 0, blockSize <= 1 << 20 else {
            throw TensorFormatError(.invalidArgument, "MatMulNBits block size \(blockSize) is not a power of two of at least 16")
        }
        guard n > 0, k > 0, n.multipliedReportingOverflow(by: k).overflow == false else {
            throw TensorFormatError(.invalidShape, "MatMulNBits with N \(n), K \(k)")
        }
        let pack = 8 / bits
        let kBlocks = (k + blockSize - 1) / blockSize
        let rowBytes = kBlocks * (blockSize / pack)
        let zpColumns = (kBlocks + pack - 1) / pack
        guard packed.count == n * rowBytes else {
            throw TensorFormatError(.sizeMismatch, "MatMulNBits B has \(packed.count) bytes, N \(n) x K \(k) in blocks of \(blockSize) at \(bits) bits needs \(n * rowBytes)")
        }
        guard scales.count == n * kBlocks else {
            throw TensorFormatError(.sizeMismatch, "MatMulNBits has \(scales.count) scales, needs \(n * kBlocks)")
        }
        if let zeroPoints, zeroPoints.count != n * zpColumns {
            throw TensorFormatError(.sizeMismatch, "MatMulNBits has \(zeroPoints.count) zero-point bytes, needs \(n * zpColumns)")
        }
        let mask = bits == 8 ? 0xFF : 0xF
        let defaultZeroPoint = 1 << (bits - 1)
        var out = [Float](repeating: 0, count: n * k)
        for row in 0..<n {
            for i in 0..<k {
                let block = i / blockSize
                let byte = Int(packed[row * rowBytes + i / pack])
                let q = (byte >> ((i % pack) * bits)) & mask
                var zp = defaultZeroPoint
                if let zeroPoints {
                    zp = (Int(zeroPoints[row * zpColumns + block / pack]) >> ((block % pack) * bits)) & mask
                }
                out[row * k + i] = Float(q - zp) * scales[row * kBlocks + block]
            }
        }
        return out
    }

    // MARK: - DequantizeLinear

    /// Symmetric int8 per output channel (axis 0) for a weight of `shape` (a convolution's [O, I, kh, kw]
    /// or any tensor whose first dimension is its output channels).
    public static func quantizeInt8PerChannel(weight: [Float], shape: [Int]) throws(TensorFormatError) -> DequantizeLinearWeight {
        let count = try checkedCount(weight: weight, shape: shape)
        let channels = shape[0]
        let perChannel = channels == 0 ? 0 : count / channels
        var q = [UInt8](repeating: 0, count: count)
        var scales = [Float](repeating: 1, count: channels)
        for c in 0..<channels {
            var maxAbs: Float = 0
            for i in 0..<perChannel {
                let v = weight[c * perChannel + i]
                guard v.isFinite else {
                    throw TensorFormatError(.unsupported, "weight element \(c * perChannel + i) is \(v): int8 quantizes finite values only")
                }
                maxAbs = max(maxAbs, abs(v))
            }
            let scale = Float(Double(maxAbs) / 127)
            guard scale > 0 else { continue }
            scales[c] = scale
            for i in 0..<perChannel {
                let r = (weight[c * perChannel + i] / scale).rounded(.toNearestOrEven)
                q[c * perChannel + i] = UInt8(bitPattern: Int8(min(max(r, -128), 127)))
            }
        }
        return DequantizeLinearWeight(
            quantized: Tensor(bytes: q, shape: shape, dataType: .int8),
            scale: Tensor(bytes: littleEndianBytes(scales), shape: [channels], dataType: .float),
            zeroPoint: nil, axis: 0, blockSize: 0)
    }

    /// Asymmetric UINT4 in blocks of `blockSize` along `axis` (1: a convolution's input channels), for
    /// opset-21 `DequantizeLinear` with `axis` and `block_size`. Scales and zero points have the
    /// weight's shape with `ceil(shape[axis] / blockSize)` on the axis.
    public static func quantizeBlockedUInt4(weight: [Float], shape: [Int], axis: Int = 1, blockSize: Int) throws(TensorFormatError) -> DequantizeLinearWeight {
        let count = try checkedCount(weight: weight, shape: shape)
        guard axis >= 0, axis < shape.count else {
            throw TensorFormatError(.invalidArgument, "axis \(axis) of a rank-\(shape.count) weight")
        }
        guard blockSize >= 2, blockSize <= 1 << 20 else {
            throw TensorFormatError(.invalidArgument, "int4 block size \(blockSize) (2 ... 1048576)")
        }
        let outer = shape[..<axis].reduce(1, *)
        let dim = shape[axis]
        let inner = shape[(axis + 1)...].reduce(1, *)
        let blocks = (dim + blockSize - 1) / blockSize
        var scaleShape = shape
        scaleShape[axis] = blocks
        var scales = [Float](repeating: 1, count: outer * blocks * inner)
        var zeroPoints = [UInt8](repeating: 0, count: scales.count)
        var q = [UInt8](repeating: 0, count: count)
        for o in 0..<outer {
            for b in 0..<blocks {
                for j in 0..<inner {
                    let first = b * blockSize
                    let last = min(first + blockSize, dim)
                    var lo: Float = 0
                    var hi: Float = 0
                    for d in first..<last {
                        let v = weight[(o * dim + d) * inner + j]
                        guard v.isFinite else {
                            throw TensorFormatError(.unsupported, "weight element \((o * dim + d) * inner + j) is \(v): int4 quantizes finite values only")
                        }
                        lo = min(lo, v)
                        hi = max(hi, v)
                    }
                    let scale = Float((Double(hi) - Double(lo)) / 15)
                    guard scale > 0 else { continue }
                    let s = (o * blocks + b) * inner + j
                    let zp = min(max((-lo / scale).rounded(.toNearestOrEven), 0), 15)
                    scales[s] = scale
                    zeroPoints[s] = UInt8(zp)
                    for d in first..<last {
                        let e = (o * dim + d) * inner + j
                        let r = (weight[e] / scale).rounded(.toNearestOrEven) + zp
                        q[e] = UInt8(min(max(r, 0), 15))
                    }
                }
            }
        }
        return DequantizeLinearWeight(
            quantized: Tensor(bytes: packNibbles(q), shape: shape, dataType: .uint4),
            scale: Tensor(bytes: littleEndianBytes(scales), shape: scaleShape, dataType: .float),
            zeroPoint: Tensor(bytes: packNibbles(zeroPoints), shape: scaleShape, dataType: .uint4),
            axis: axis, blockSize: blockSize)
    }

    /// `DequantizeLinear` (opset 21) over f32 scales: `(Float(q) - Float(zp)) * scale` with the scale and
    /// zero point chosen per tensor (one element), per axis (1-D of shape[axis], `blockSize` 0) or per
    /// block (`blockSize` > 0: the x shape with `ceil(shape[axis] / blockSize)` on the axis), as the spec
    /// and onnx.reference broadcast them. x may be INT8, UINT8, INT4 or UINT4 (packed, low nibble first);
    /// the zero point must have x's type. Every shape and byte count is checked (`size-mismatch`,
    /// `invalid-shape`), so hostile initializers cannot index past their bytes.
    public static func dequantizeLinear(_ x: Tensor, scale: Tensor, zeroPoint: Tensor?, axis: Int = 1, blockSize: Int = 0) throws(TensorFormatError) -> [Float] {
        guard [.int8, .uint8, .int4, .uint4].contains(x.dataType) else {
            throw TensorFormatError(.unsupported, "DequantizeLinear of \(x.dataType.name) (INT8, UINT8, INT4, UINT4 are read)")
        }
        guard scale.dataType == .float else {
            throw TensorFormatError(.unsupported, "DequantizeLinear scale of \(scale.dataType.name) (FLOAT is read)")
        }
        if let zeroPoint, zeroPoint.dataType != x.dataType {
            throw TensorFormatError(.invalidArgument, "DequantizeLinear zero point of \(zeroPoint.dataType.name) for x of \(x.dataType.name)")
        }
        let count = try elementCount(x.shape)
        let scaleCount = try elementCount(scale.shape)
        guard x.dataType.byteCount(elements: count) == x.bytes.count else {
            throw TensorFormatError(.sizeMismatch, "DequantizeLinear x \(x.shape) of \(x.dataType.name) has \(x.bytes.count) bytes")
        }
        guard scale.bytes.count == scaleCount * 4 else {
            throw TensorFormatError(.sizeMismatch, "DequantizeLinear scale \(scale.shape) has \(scale.bytes.count) bytes")
        }
        if let zeroPoint {
            guard zeroPoint.shape == scale.shape,
                  x.dataType.byteCount(elements: scaleCount) == zeroPoint.bytes.count else {
                throw TensorFormatError(.sizeMismatch, "DequantizeLinear zero point \(zeroPoint.shape) with \(zeroPoint.bytes.count) bytes for scale \(scale.shape)")
            }
        }
        let layout = try ScaleLayout(xShape: x.shape, scaleShape: scale.shape, axis: axis, blockSize: blockSize)
        let scales = floats(littleEndian: scale.bytes)
        var out = [Float](repeating: 0, count: count)
        for e in 0..<count {
            let s = layout.index(e)
            let zp = zeroPoint.map { element($0.bytes, at: s, of: $0.dataType) } ?? 0
            out[e] = (Float(element(x.bytes, at: e, of: x.dataType)) - Float(zp)) * scales[s]
        }
        return out
    }

    /// Where each element of a DequantizeLinear input finds its scale and zero point: one for the
    /// tensor (a scale of one element), one per index of `axis` (`blockSize` 0, a 1-D scale of
    /// shape[axis]), or one per block of `blockSize` along `axis` (the x shape with
    /// `ceil(shape[axis] / blockSize)` on the axis). Any other scale shape is `invalid-shape`.
    struct ScaleLayout {
        private var inner = 1, dim = 1, blocks = 1, blockSize = 0, perTensor = true

        init(xShape: [Int], scaleShape: [Int], axis: Int, blockSize: Int) throws(TensorFormatError) {
            let scaleCount = try elementCount(scaleShape)
            if scaleCount == 1 { return }
            perTensor = false
            let rank = xShape.count
            let resolved = axis < 0 ? axis + rank : axis
            guard resolved >= 0, resolved < rank else {
                throw TensorFormatError(.invalidArgument, "DequantizeLinear axis \(axis) of a rank-\(rank) input")
            }
            dim = xShape[resolved]
            inner = xShape[(resolved + 1)...].reduce(1, *)
            if blockSize == 0 {
                guard scaleShape == [dim] else {
                    throw TensorFormatError(.invalidShape, "DequantizeLinear per-axis scale \(scaleShape) for x \(xShape) on axis \(resolved)")
                }
            } else {
                guard blockSize > 0 else { throw TensorFormatError(.invalidArgument, "DequantizeLinear block size \(blockSize)") }
                blocks = dim / blockSize + (dim % blockSize == 0 ? 0 : 1)
                var expected = xShape
                expected[resolved] = blocks
                guard scaleShape == expected else {
                    throw TensorFormatError(.invalidShape, "DequantizeLinear blocked scale \(scaleShape) for x \(xShape), axis \(resolved), block \(blockSize) (expected \(expected))")
                }
                self.blockSize = blockSize
            }
        }

        func index(_ e: Int) -> Int {
            if perTensor { return 0 }
            let d = (e / inner) % dim
            if blockSize == 0 { return d }
            return ((e / (inner * dim)) * blocks + d / blockSize) * inner + e % inner
        }
    }

    // MARK: - Bytes

    /// Element `index` of packed integer bytes of `type` (INT8, UINT8, INT4, UINT4) as an Int.
    private static func element(_ bytes: [UInt8], at index: Int, of type: ONNXDataType) -> Int {
        switch type {
        case .int8: return Int(Int8(bitPattern: bytes[index]))
        case .uint4: return Int((bytes[index / 2] >> ((index % 2) * 4)) & 0xF)
        case .int4:
            let nibble = Int((bytes[index / 2] >> ((index % 2) * 4)) & 0xF)
            return nibble >= 8 ? nibble - 16 : nibble
        default: return Int(bytes[index])
        }
    }

    /// Packs 4-bit values two to a byte, element 2i in the low nibble (ONNX's INT4/UINT4 layout).
    static func packNibbles(_ values: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: (values.count + 1) / 2)
        for (i, v) in values.enumerated() {
            out[i / 2] |= (v & 0xF) << ((i % 2) * 4)
        }
        return out
    }

    static func littleEndianBytes(_ values: [Float]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(values.count * 4)
        for v in values {
            let bits = v.bitPattern.littleEndian
            withUnsafeBytes(of: bits) { out.append(contentsOf: $0) }
        }
        return out
    }

    static func floats(littleEndian bytes: [UInt8]) -> [Float] {
        var out = [Float](repeating: 0, count: bytes.count / 4)
        for i in 0..<out.count {
            let b = UInt32(bytes[4 * i]) | UInt32(bytes[4 * i + 1]) << 8 | UInt32(bytes[4 * i + 2]) << 16 | UInt32(bytes[4 * i + 3]) << 24
            out[i] = Float(bitPattern: b)
        }
        return out
    }

    /// The product of non-negative dims, or `invalid-shape`/`size-overflow`.
    static func elementCount(_ shape: [Int]) throws(TensorFormatError) -> Int {
        var count = 1
        for d in shape {
            guard d >= 0 else { throw TensorFormatError(.invalidShape, "dimension \(d) in \(shape)") }
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, p <= 1 << 48 else { throw TensorFormatError(.sizeOverflow, "shape \(shape) has too many elements") }
            count = p
        }
        return count
    }

    private static func checkedCount(weight: [Float], shape: [Int]) throws(TensorFormatError) -> Int {
        guard !shape.isEmpty else { throw TensorFormatError(.invalidArgument, "a scalar weight has no channels to quantize") }
        let count = try elementCount(shape)
        guard count == weight.count else {
            throw TensorFormatError(.invalidArgument, "a \(shape) weight needs \(count) values, not \(weight.count)")
        }
        return count
    }
}
