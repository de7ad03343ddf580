import ONNXProto

/// Which tensors an ONNX model holds under diffusers' names, and how each is made from initializers
/// (the rules are on `Checkpoint.openONNX`). Tensors come in the order of the initializers they are
/// made from (a quantized tensor where its B or x initializer is).
struct ONNXTensorPlan {
    struct Tensor {
        var name: String
        var dtype: DType
        var shape: [Int]
        var source: ONNXTensorSource
    }

    /// The exporter's graph constants (shapes, axes, scalars), which are not weights.
    static let constantPrefix = "/const/"

    private(set) var tensors: [Tensor] = []
    /// Facts for `inspect`: constants and initializers that are not tensors, quantized nodes read.
    private(set) var notes: [(String, String)] = []

    init(model: ONNXModel, initializers: [ByteKey: ONNXModel.Initializer], stored: [ByteKey: ONNXStored]) throws(TensorFormatError) {
        var consumed = Set<ByteKey>()
        var quantized: [ByteKey: Tensor] = [:]
        var transposedB = Set<ByteKey>()
        var quantCounts: [String: Int] = [:]
        // Outputs read as a MatMul's B (or a Gemm's B without transB): those tensors are [in, out].
        for node in model.nodes where Self.isDefault(node.domain) && node.input.count > 1 {
            if node.opType == "MatMul" || (node.opType == "Gemm" && Self.int(node, "transB") ?? 0 == 0) {
                transposedB.insert(ByteKey(node.input[1]))
            }
        }
        for node in model.nodes {
            if node.opType == "MatMulNBits", node.domain == "com.microsoft", node.input.count >= 3 {
                let b = node.input[1], scales = node.input[2], zp = node.input.count > 3 ? node.input[3] : ""
                guard quantized[ByteKey(b)] == nil, let packed = initializers[ByteKey(b)], let scale = initializers[ByteKey(scales)],
                      zp.isEmpty || initializers[ByteKey(zp)] != nil else { continue }
                let tensor = try Self.matMulNBits(node, packed: packed, scales: scale, zeroPoints: zp.isEmpty ? nil : initializers[ByteKey(zp)], stored: stored)
                quantized[ByteKey(b)] = tensor
                consumed.formUnion([b, scales, zp].map(ByteKey.init))
                quantCounts["MatMulNBits", default: 0] += 1
            } else if node.opType == "DequantizeLinear", Self.isDefault(node.domain), node.input.count >= 2, let output = node.output.first {
                let zp = node.input.count > 2 ? node.input[2] : ""
                guard quantized[ByteKey(node.input[0])] == nil, let x = initializers[ByteKey(node.input[0])], let scale = initializers[ByteKey(node.input[1])],
                      zp.isEmpty || initializers[ByteKey(zp)] != nil,
                      [.int8, .uint8, .int4, .uint4].contains(x.dataType), scale.dataType == .float else { continue }
                let zeroPoint = zp.isEmpty ? nil : initializers[ByteKey(zp)]
                let tensor = try Self.dequantizeLinear(node, output: output, x: x, scale: scale, zeroPoint: zeroPoint,
                                                       transposed: transposedB.contains(ByteKey(output)) && x.dims.count == 2, stored: stored)
                quantized[ByteKey(x.name)] = tensor
                consumed.formUnion([x.name, scale.name, zp].map(ByteKey.init))
                quantCounts["DequantizeLinear", default: 0] += 1
            }
        }
        var constants = 0
        var unreadable: [String] = []
        for initializer in model.initializers {
            if let tensor = quantized[ByteKey(initializer.name)] {
                tensors.append(tensor)
                continue
            }
            guard !consumed.contains(ByteKey(initializer.name)) else { continue }
            if initializer.name.hasPrefix(Self.constantPrefix) {
                constants += 1
                continue
            }
            guard let dtype = initializer.dataType.dtype, let source = stored[ByteKey(initializer.name)] else {
                unreadable.append("\(initializer.name) (\(initializer.dataType.name))")
                continue
            }
            if transposedB.contains(ByteKey(initializer.name)), initializer.dims.count == 2, dtype.bitsPerElement % 8 == 0 {
                let (rows, cols) = (initializer.dims[0], initializer.dims[1])
                tensors.append(Tensor(name: initializer.name, dtype: dtype, shape: [cols, rows],
                                      source: .transposed(source, rows: rows, cols: cols, elementBytes: dtype.bitsPerElement / 8)))
            } else {
                tensors.append(Tensor(name: initializer.name, dtype: dtype, shape: initializer.dims, source: .stored(source)))
            }
        }
        if !quantCounts.isEmpty {
            notes.append(("onnx quantized tensors", quantCounts.sorted { $0.key < $1.key }.map { "\($0.value) from \($0.key)" }.joined(separator: ", ")))
        }
        if constants > 0 { notes.append(("onnx graph constants", "\(constants) initializers named \(Self.constantPrefix)... (not tensors)")) }
        if !unreadable.isEmpty {
            notes.append(("onnx initializers not read", unreadable.prefix(8).joined(separator: ", ") + (unreadable.count > 8 ? ", ... (\(unreadable.count))" : "")))
        }
    }

    private static func isDefault(_ domain: String) -> Bool { domain.isEmpty || domain == "ai.onnx" }

    private static func int(_ node: Onnx_NodeProto, _ name: String) -> Int? {
        guard let attribute = node.attribute.first(where: { $0.name == name }), attribute.hasI,
              attribute.i >= Int64(Int32.min), attribute.i <= Int64(Int32.max) else { return nil }
        return Int(attribute.i)
    }

    /// A MatMulNBits node's weight: attributes K, N, bits, block_size checked against B ([N, kBlocks,
    /// blob] or its flattening), the scales (N × kBlocks floats) and the zero points (uint8, packed).
    private static func matMulNBits(_ node: Onnx_NodeProto, packed: ONNXModel.Initializer, scales: ONNXModel.Initializer,
                                    zeroPoints: ONNXModel.Initializer?, stored: [ByteKey: ONNXStored]) throws(TensorFormatError) -> Tensor {
        let what = ONNXGraphRules.describe(node)
        guard let k = int(node, "K"), let n = int(node, "N"), let bits = int(node, "bits"), let blockSize = int(node, "block_size") else {
            throw TensorFormatError(.onnxQuantNode, "\(what) lacks one of the attributes K, N, bits, block_size", tensor: packed.name)
        }
        guard bits == 4 || bits == 8 else {
            throw TensorFormatError(.unsupported, "\(what) has \(bits) bits (4 and 8 are read)", tensor: packed.name)
        }
        guard n > 0, k > 0, blockSize >= 16, blockSize & (blockSize - 1) == 0 else {
            throw TensorFormatError(.onnxQuantNode, "\(what) has N \(n), K \(k), block_size \(blockSize)", tensor: packed.name)
        }
        let kBlocks = k / blockSize + (k % blockSize == 0 ? 0 : 1)
        let blob = blockSize * bits / 8
        // Attributes are up to 2^31 each: products checked, so hostile ones cannot overflow.
        func product(_ a: Int, _ b: Int) -> Int {
            let (p, overflow) = a.multipliedReportingOverflow(by: b)
            return overflow ? -1 : p
        }
        guard packed.dataType == .uint8, packed.elementCount == product(product(n, kBlocks), blob) else {
            throw TensorFormatError(.onnxQuantNode, "\(what): B is \(packed.dataType.name) \(packed.dims), N \(n) x K \(k) at \(bits) bits in blocks of \(blockSize) need UINT8 [\(n), \(kBlocks), \(blob)]", tensor: packed.name)
        }
        guard scales.dataType == .float, scales.elementCount == product(n, kBlocks) else {
            throw TensorFormatError(.onnxQuantNode, "\(what): scales are \(scales.dataType.name) \(scales.dims), need FLOAT [\(n), \(kBlocks)]", tensor: scales.name)
        }
        if let zeroPoints {
            let zpColumns = (kBlocks * bits + 7) / 8
            guard zeroPoints.dataType == .uint8, zeroPoints.elementCount == product(n, zpColumns) else {
                throw TensorFormatError(.onnxQuantNode, "\(what): zero points are \(zeroPoints.dataType.name) \(zeroPoints.dims), need UINT8 [\(n), \(zpColumns)]", tensor: zeroPoints.name)
            }
        }
        guard let b = stored[ByteKey(packed.name)], let s = stored[ByteKey(scales.name)] else {
            throw TensorFormatError(.onnxQuantNode, "\(what): B or scales have no data", tensor: packed.name)
        }
        let suffix = "_Q\(bits)"
        let name = packed.name.hasSuffix(suffix) && packed.name.count > suffix.count ? String(packed.name.dropLast(suffix.count)) : packed.name
        return Tensor(name: name, dtype: .f32, shape: [n, k],
                      source: .matMulNBits(packed: b, scales: s, zeroPoints: zeroPoints.flatMap { stored[ByteKey($0.name)] },
                                           n: n, k: k, bits: bits, blockSize: blockSize))
    }

    /// A DequantizeLinear node over initializers: its scale layout checked now, so a file whose shapes
    /// disagree fails on open rather than on read.
    private static func dequantizeLinear(_ node: Onnx_NodeProto, output: String, x: ONNXModel.Initializer, scale: ONNXModel.Initializer,
                                         zeroPoint: ONNXModel.Initializer?, transposed: Bool,
                                         stored: [ByteKey: ONNXStored]) throws(TensorFormatError) -> Tensor {
        let what = ONNXGraphRules.describe(node)
        let axis = int(node, "axis") ?? 1
        let blockSize = int(node, "block_size") ?? 0
        do {
            _ = try ONNXQuantBlocks.ScaleLayout(xShape: x.dims, scaleShape: scale.dims, axis: axis, blockSize: blockSize)
        } catch {
            throw TensorFormatError(.onnxQuantNode, "\(what): \(error.message)", tensor: output)
        }
        if let zeroPoint, zeroPoint.dataType != x.dataType || zeroPoint.dims != scale.dims {
            throw TensorFormatError(.onnxQuantNode, "\(what): zero point \(zeroPoint.dataType.name) \(zeroPoint.dims) for x of \(x.dataType.name) and scale \(scale.dims)", tensor: output)
        }
        guard let xs = stored[ByteKey(x.name)], let ss = stored[ByteKey(scale.name)] else {
            throw TensorFormatError(.onnxQuantNode, "\(what): x or scale have no data", tensor: output)
        }
        let shape = transposed ? [x.dims[1], x.dims[0]] : x.dims
        return Tensor(name: output, dtype: .f32, shape: shape,
                      source: .dequantizeLinear(x: xs, xType: x.dataType, xShape: x.dims, scale: ss, scaleShape: scale.dims,
                                                zeroPoint: zeroPoint.flatMap { stored[ByteKey($0.name)] }, axis: axis, blockSize: blockSize,
                                                transposed: transposed))
    }
}

/// Tensor bytes of an ONNX model: stored initializers straight from the maps (pages released after
/// each chunk), transposed and dequantized ones made whole in memory (one tensor at a time) and handed
/// out in chunks.
final class ONNXProvider: TensorDataProvider {
    let maps: [MappedFile]
    let sources: [ByteKey: ONNXTensorSource]

    init(maps: [MappedFile], sources: [ByteKey: ONNXTensorSource]) {
        self.maps = maps
        self.sources = sources
    }

    var isSequential: Bool { false }

    func read(_ entry: TensorEntry, chunkBytes: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        if case .stored(.mapped)? = sources[ByteKey(entry.name)] {
            return try MappedProvider(maps: maps).read(entry, chunkBytes: chunkBytes, body)
        }
        let bytes = try materialize(entry)
        try bytes.withUnsafeBytes { try handOut($0, chunkBytes: chunkBytes, body) }
    }

    func read(_ entry: TensorEntry, range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        if case .stored(.mapped)? = sources[ByteKey(entry.name)] {
            return try MappedProvider(maps: maps).read(entry, range: range, body)
        }
        let bytes = try materialize(entry)
        guard range.lowerBound >= 0, range.upperBound <= bytes.count else {
            throw TensorFormatError(.invalidArgument, "bytes \(range) of a \(bytes.count)-byte tensor", tensor: entry.name)
        }
        try bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    func finish() throws {}

    private func copy(_ stored: ONNXStored) -> [UInt8] {
        switch stored {
        case .inline(let bytes): return bytes
        case .mapped(let file, let range):
            let out = [UInt8](maps[file].bytes(range))
            maps[file].release(range)
            return out
        }
    }

    private func materialize(_ entry: TensorEntry) throws(TensorFormatError) -> [UInt8] {
        guard let source = sources[ByteKey(entry.name)] else {
            throw TensorFormatError(.notFound, "no such tensor in the ONNX model", tensor: entry.name)
        }
        // A mapped matrix is transposed straight from the map (no copy of the input), its pages released after.
        if case .transposed(.mapped(let file, let range), let rows, let cols, let width) = source {
            defer { maps[file].release(range) }
            return Self.transpose(maps[file].bytes(range), rows: rows, cols: cols, width: width)
        }
        return try Self.materialize(source, copy: copy)
    }

    /// `rows` × `cols` elements of `width` bytes, read as `cols` × `rows`.
    static func transpose(_ input: UnsafeRawBufferPointer, rows: Int, cols: Int, width: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: input.count)
        // rows × cols × width == input.count (checked when the model was scanned): raw copies are in bounds.
        out.withUnsafeMutableBytes { target in
            guard let from = input.baseAddress, let to = target.baseAddress else { return }
            for r in 0..<rows {
                for c in 0..<cols {
                    (to + (c * rows + r) * width).copyMemory(from: from + (r * cols + c) * width, byteCount: width)
                }
            }
        }
        return out
    }

    /// A tensor's bytes as the checkpoint hands them out, from the stored bytes `copy` gives.
    static func materialize(_ source: ONNXTensorSource, copy: (ONNXStored) -> [UInt8]) throws(TensorFormatError) -> [UInt8] {
        switch source {
        case .stored(let stored):
            return copy(stored)
        case .transposed(let stored, let rows, let cols, let width):
            return copy(stored).withUnsafeBytes { transpose($0, rows: rows, cols: cols, width: width) }
        case .matMulNBits(let packed, let scales, let zeroPoints, let n, let k, let bits, let blockSize):
            let values = try ONNXQuantBlocks.dequantizeMatMulNBits(
                packed: copy(packed), scales: ONNXQuantBlocks.floats(littleEndian: copy(scales)), zeroPoints: zeroPoints.map(copy),
                n: n, k: k, bits: bits, blockSize: blockSize)
            return ONNXQuantBlocks.littleEndianBytes(values)
        case .dequantizeLinear(let x, let xType, let xShape, let scale, let scaleShape, let zeroPoint, let axis, let blockSize, let transposed):
            var values = try ONNXQuantBlocks.dequantizeLinear(
                ONNXQuantBlocks.Tensor(bytes: copy(x), shape: xShape, dataType: xType),
                scale: ONNXQuantBlocks.Tensor(bytes: copy(scale), shape: scaleShape, dataType: .float),
                zeroPoint: zeroPoint.map { ONNXQuantBlocks.Tensor(bytes: copy($0), shape: scaleShape, dataType: xType) },
                axis: axis, blockSize: blockSize)
            if transposed {
                let (rows, cols) = (xShape[0], xShape[1])
                var out = [Float](repeating: 0, count: values.count)
                for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = values[r * cols + c] } }
                values = out
            }
            return ONNXQuantBlocks.littleEndianBytes(values)
        }
    }
}
