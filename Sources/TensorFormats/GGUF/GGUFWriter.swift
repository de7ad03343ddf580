/// One tensor of a GGUF file being written: its stored type and shape, and the shape it had before
/// being stored as rows of 256 (recorded as `comfy.gguf.orig_shape.NAME`).
public struct GGUFPlannedTensor: Sendable {
    public var name: String
    public var type: GGMLType
    /// Torch order; the file stores it reversed.
    public var storedShape: [Int]
    public var originalShape: [Int]?
    /// Relative to the data section, a multiple of the alignment.
    public var offset: Int
    public var byteCount: Int

    public var elementCount: Int { storedShape.reduce(1, *) }
}

/// Writes a GGUF v3 file tensor by tensor.
///
/// The header (key/values and tensor infos with their offsets) is planned from the tensors' types and
/// shapes before any data, so the data can then be streamed in order with bounded memory. The layout
/// is gguf-py's `GGUFWriter`: key/values in the order given, tensor infos in the order given, the data
/// section and every tensor's data padded to the alignment with zeros.
public struct GGUFWriter {
    public static let version: UInt32 = 3
    public static let alignment = GGUFHeader.defaultAlignment
    /// ggml's `GGML_QUANT_VERSION`.
    public static let quantizationVersion: UInt32 = 2

    public let tensors: [GGUFPlannedTensor]
    public let headerBytes: [UInt8]

    /// Which general key/values open the file.
    public enum KeyStyle: Sendable {
        /// architecture, file type, quantization version, alignment, then the input's metadata.
        case dmsurgery
        /// ComfyUI-GGUF's convert.py: architecture, quantization version, file type, and nothing else
        /// (`metadata` is not written).
        case comfyUI
    }

    /// `metadata` entries become STRING key/values after the general ones; keys the writer sets itself win.
    public init(architecture: String, fileType: UInt32, metadata: Metadata?, keyStyle: KeyStyle = .dmsurgery,
                tensors planned: [(name: String, type: GGMLType, storedShape: [Int], originalShape: [Int]?)]) throws(TensorFormatError) {
        var kv = GGUFBytes()
        var count = 0
        kv.string("general.architecture"); kv.u32(GGUFValueType.string.rawValue); kv.string(architecture)
        switch keyStyle {
        case .dmsurgery:
            kv.string("general.file_type"); kv.u32(GGUFValueType.u32.rawValue); kv.u32(fileType)
            kv.string("general.quantization_version"); kv.u32(GGUFValueType.u32.rawValue); kv.u32(GGUFWriter.quantizationVersion)
            kv.string(GGUFHeader.alignmentKey); kv.u32(GGUFValueType.u32.rawValue); kv.u32(UInt32(GGUFWriter.alignment))
            count += 4
        case .comfyUI:
            kv.string("general.quantization_version"); kv.u32(GGUFValueType.u32.rawValue); kv.u32(GGUFWriter.quantizationVersion)
            kv.string("general.file_type"); kv.u32(GGUFValueType.u32.rawValue); kv.u32(fileType)
            count += 3
        }
        let metadata = keyStyle == .dmsurgery ? metadata : nil
        let reserved = Set(["general.architecture", "general.file_type", "general.quantization_version", GGUFHeader.alignmentKey].map(ByteKey.init))
        for entry in metadata?.entries ?? [] where !reserved.contains(ByteKey(entry.key))
            && !entry.key.utf8.starts(with: GGUFHeader.originalShapePrefix.utf8) {
            kv.string(entry.key); kv.u32(GGUFValueType.string.rawValue); kv.string(entry.value)
            count += 1
        }
        var tensors: [GGUFPlannedTensor] = []
        var offset = 0
        for tensor in planned {
            guard tensor.storedShape.count <= 4 else {
                throw TensorFormatError(.unsupported, "\(tensor.storedShape.count) dimensions; ggml holds at most 4", tensor: tensor.name)
            }
            let elements = tensor.storedShape.reduce(1, *)
            guard (tensor.storedShape.last ?? 1) % tensor.type.blockSize == 0, let bytes = tensor.type.byteCount(elements: elements) else {
                throw TensorFormatError(.invalidShape, "rows of \(tensor.storedShape.last ?? 1) are not whole \(tensor.type.name) blocks", tensor: tensor.name)
            }
            if let original = tensor.originalShape {
                kv.string(GGUFHeader.originalShapePrefix + tensor.name)
                kv.u32(GGUFValueType.array.rawValue); kv.u32(GGUFValueType.i32.rawValue); kv.u64(UInt64(original.count))
                for dim in original {
                    guard let narrow = Int32(exactly: dim) else {
                        throw TensorFormatError(.invalidShape, "dimension \(dim) does not fit the INT32 original-shape key", tensor: tensor.name)
                    }
                    kv.u32(UInt32(bitPattern: narrow))
                }
                count += 1
            }
            tensors.append(GGUFPlannedTensor(name: tensor.name, type: tensor.type, storedShape: tensor.storedShape,
                                             originalShape: tensor.originalShape, offset: offset, byteCount: bytes))
            offset += GGUFWriter.padded(bytes)
        }
        var out = GGUFBytes()
        out.bytes += GGUFHeader.magic
        out.u32(GGUFWriter.version)
        out.u64(UInt64(tensors.count))
        out.u64(UInt64(count))
        out.bytes += kv.bytes
        for tensor in tensors {
            out.string(tensor.name)
            out.u32(UInt32(tensor.storedShape.count))
            for dim in tensor.storedShape.reversed() { out.u64(UInt64(dim)) }
            out.u32(tensor.type.rawValue)
            out.u64(UInt64(tensor.offset))
        }
        out.bytes += [UInt8](repeating: 0, count: GGUFWriter.padded(out.bytes.count) - out.bytes.count)
        self.tensors = tensors
        self.headerBytes = out.bytes
    }

    static func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// Total bytes the file will have.
    public var fileSize: Int { headerBytes.count + (tensors.last.map { $0.offset + GGUFWriter.padded($0.byteCount) } ?? 0) }

    /// Writes the header, then asks `produce` for each tensor's stored bytes in order, padding after each.
    public func write(to output: OutputFile, produce: (GGUFPlannedTensor, (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        try output.write(headerBytes)
        for tensor in tensors {
            var written = 0
            try produce(tensor) { piece in
                written += piece.count
                guard written <= tensor.byteCount else {
                    throw TensorFormatError(.sizeMismatch, "more bytes supplied than the tensor info declares", file: output.path, tensor: tensor.name)
                }
                try output.write(piece)
            }
            guard written == tensor.byteCount else {
                throw TensorFormatError(.sizeMismatch, "\(written) bytes supplied, the tensor info declares \(tensor.byteCount)", file: output.path, tensor: tensor.name)
            }
            try output.write([UInt8](repeating: 0, count: GGUFWriter.padded(written) - written))
        }
    }
}

/// Little-endian GGUF encoding of header fields.
struct GGUFBytes {
    var bytes: [UInt8] = []

    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func string(_ s: String) {
        u64(UInt64(s.utf8.count))
        bytes += Array(s.utf8)
    }
}
