/// One tensor as a GGUF tensor-info record describes it.
public struct GGUFTensorInfo: Sendable, Hashable {
    public var name: String
    /// ggml order: `dims[0]` is the fastest-varying (the last torch dimension).
    public var dims: [Int]
    public var type: GGMLType
    /// Relative to the start of the data section.
    public var offset: Int
    public var byteCount: Int

    public var elementCount: Int { dims.reduce(1, *) }
    /// The torch-order shape of the stored tensor.
    public var shape: [Int] { dims.reversed() }
}

/// The parsed and validated front of a GGUF file: key/values, tensor infos, where the data starts.
///
/// Every count and length is checked against the bytes left before it is used, so a hostile header
/// (a count of 2^63, a string longer than the file, a dimension of 2^64) fails with one error instead
/// of allocating or trapping.
public struct GGUFHeader: Sendable {
    public static let magic: [UInt8] = Array("GGUF".utf8)
    public static let defaultAlignment = 32
    /// ggml allows 4; more is read for tensors other tools wrote, none is written.
    public static let maximumDims = 8
    public static let alignmentKey = "general.alignment"
    public static let originalShapePrefix = "comfy.gguf.orig_shape."

    public var version: UInt32
    public var keyValues: [(key: String, value: GGUFValue)]
    public var tensors: [GGUFTensorInfo]
    public var alignment: Int
    public var dataStart: Int

    public func value(_ key: String) -> GGUFValue? { GGUFHeader.value(in: keyValues, key) }

    /// The value of the key with exactly `key`'s bytes.
    static func value(in keyValues: [(key: String, value: GGUFValue)], _ key: String) -> GGUFValue? {
        let wanted = ByteKey(key)
        return keyValues.first(where: { ByteKey($0.key) == wanted })?.value
    }

    /// Parses `bytes`, the whole file.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(TensorFormatError) -> GGUFHeader {
        var c = GGUFCursor(bytes: bytes)
        guard bytes.count >= 4, Array(bytes[0..<4]) == magic else {
            throw TensorFormatError(.ggufMagic, "file does not start with the GGUF magic")
        }
        c.position = 4
        let version = try c.u32("version")
        guard version == 2 || version == 3 else {
            throw TensorFormatError(.ggufVersion, "GGUF version \(version) is not read (2 and 3 are)")
        }
        let tensorCount = try c.u64("tensor count")
        let kvCount = try c.u64("key/value count")
        // Each key/value takes at least 13 bytes (key length, type, one byte), each tensor info 24.
        guard kvCount <= UInt64(c.remaining / 13) else {
            throw TensorFormatError(.ggufCountPastEOF, "key/value count \(kvCount) cannot fit in the \(c.remaining) bytes left")
        }
        guard tensorCount <= UInt64(c.remaining / 24) else {
            throw TensorFormatError(.ggufCountPastEOF, "tensor count \(tensorCount) cannot fit in the \(c.remaining) bytes left")
        }
        var keyValues: [(key: String, value: GGUFValue)] = []
        // Keys and names compare by their bytes as gguf-py and ggml do: `é` and `e` + U+0301 are two.
        var keys = Set<ByteKey>()
        for _ in 0..<Int(kvCount) {
            let key = try c.string("key")
            guard keys.insert(ByteKey(key)).inserted else {
                throw TensorFormatError(.duplicateKey, "key '\(key)' appears twice", tensor: key)
            }
            do {
                keyValues.append((key, try c.value(try c.u32("value type"), topLevel: true)))
            } catch {
                var located = error
                if located.tensor == nil { located.message += " (key '\(key)')" }
                throw located
            }
        }
        var alignment = defaultAlignment
        if let value = value(in: keyValues, alignmentKey) {
            guard case .integer(.u32, let a) = value, a > 0, a & (a - 1) == 0 else {
                throw TensorFormatError(.ggufAlignment, "general.alignment must be a UINT32 power of two (got \(value.type.name) \(value.text))", tensor: alignmentKey)
            }
            alignment = Int(a)
        }
        var tensors: [GGUFTensorInfo] = []
        var names = Set<ByteKey>()
        for _ in 0..<Int(tensorCount) {
            let name = try c.string("tensor name")
            guard names.insert(ByteKey(name)).inserted else {
                throw TensorFormatError(.duplicateKey, "tensor name appears twice", tensor: name)
            }
            do {
                tensors.append(try c.tensorInfo(name: name, alignment: alignment))
            } catch {
                var located = error
                located.tensor = name
                throw located
            }
        }
        let (padded, overflow) = c.position.addingReportingOverflow(alignment - 1)
        let dataStart = overflow ? Int.max : padded / alignment * alignment
        let dataLength = bytes.count - min(dataStart, bytes.count)
        if !tensors.isEmpty && dataStart > bytes.count {
            throw TensorFormatError(.truncated, "file ends before its data section (at \(dataStart))")
        }
        for tensor in tensors where tensor.byteCount > dataLength || tensor.offset > dataLength - tensor.byteCount {
            throw TensorFormatError(.invalidOffsets, "data [\(tensor.offset), +\(tensor.byteCount)) runs past the end of the file (\(dataLength) data bytes)", tensor: tensor.name)
        }
        let ordered = tensors.sorted { $0.offset < $1.offset }
        for (previous, next) in zip(ordered, ordered.dropFirst()) where next.offset < previous.offset + previous.byteCount {
            throw TensorFormatError(.ggufOverlap, "data overlaps tensor '\(previous.name)'", tensor: next.name)
        }
        return GGUFHeader(version: version, keyValues: keyValues, tensors: tensors, alignment: alignment, dataStart: dataStart)
    }

    /// The torch-order shape ComfyUI-GGUF records for a tensor stored as rows of 256, if any.
    public func originalShape(of tensor: GGUFTensorInfo, in bytes: UnsafeRawBufferPointer) throws(TensorFormatError) -> [Int]? {
        guard let value = value(GGUFHeader.originalShapePrefix + tensor.name) else { return nil }
        guard case .array(let element, let count, let range) = value,
              [.i32, .u32, .i64, .u64].contains(element), count <= GGUFHeader.maximumDims else {
            throw TensorFormatError(.ggufOriginalShape, "original shape must be an integer array of at most \(GGUFHeader.maximumDims) dims (got \(value.text))", tensor: tensor.name)
        }
        let size = element.fixedSize!
        var shape: [Int] = []
        var product = 1
        for i in 0..<count {
            let at = range.lowerBound + i * size
            let raw: Int64 = switch element {
            case .i32: Int64(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: Int32.self)))
            case .u32: Int64(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
            case .i64: Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: Int64.self))
            default: Int64(clamping: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)))
            }
            let (next, overflow) = product.multipliedReportingOverflow(by: Int(clamping: raw))
            guard raw >= 0, !overflow else {
                throw TensorFormatError(.ggufOriginalShape, "original shape has a negative or overflowing dimension", tensor: tensor.name)
            }
            product = next
            shape.append(Int(raw))
        }
        guard product == tensor.elementCount else {
            throw TensorFormatError(.ggufOriginalShape, "original shape \(shape) holds \(product) elements, the tensor \(tensor.elementCount)", tensor: tensor.name)
        }
        return shape
    }
}

/// A bounds-checked reader over the header bytes.
struct GGUFCursor {
    let bytes: UnsafeRawBufferPointer
    var position = 0

    var remaining: Int { bytes.count - position }

    mutating func take(_ n: Int, _ what: String) throws(TensorFormatError) -> Int {
        guard n >= 0, n <= remaining else {
            throw TensorFormatError(.truncated, "\(what) (\(n) bytes at \(position)) runs past the end of the file (\(bytes.count) bytes)")
        }
        defer { position += n }
        return position
    }

    mutating func u32(_ what: String) throws(TensorFormatError) -> UInt32 {
        UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(4, what), as: UInt32.self))
    }

    mutating func u64(_ what: String) throws(TensorFormatError) -> UInt64 {
        UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(8, what), as: UInt64.self))
    }

    mutating func string(_ what: String) throws(TensorFormatError) -> String {
        let length = try u64("\(what) length")
        guard length <= UInt64(remaining) else {
            throw TensorFormatError(.truncated, "\(what) length \(length) runs past the end of the file (\(remaining) bytes left)")
        }
        let start = try take(Int(length), what)
        guard let text = String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<(start + Int(length))]), as: UTF8.self) else {
            throw TensorFormatError(.ggufInvalidString, "\(what) is not valid UTF-8")
        }
        return text
    }

    mutating func value(_ rawType: UInt32, topLevel: Bool) throws(TensorFormatError) -> GGUFValue {
        guard let type = GGUFValueType(rawValue: rawType) else {
            throw TensorFormatError(.ggufValueType, "unknown value type \(rawType)")
        }
        switch type {
        case .string:
            return .string(try string("string value"))
        case .array:
            guard topLevel else { throw TensorFormatError(.ggufNestedArray, "an array holds arrays (ggml reads none)") }
            let rawElement = try u32("array element type")
            guard let element = GGUFValueType(rawValue: rawElement) else {
                throw TensorFormatError(.ggufValueType, "unknown array element type \(rawElement)")
            }
            if element == .array { throw TensorFormatError(.ggufNestedArray, "an array holds arrays (ggml reads none)") }
            let count = try u64("array length")
            let minimum = UInt64(element.fixedSize ?? 8)
            guard count <= UInt64(remaining) / minimum else {
                throw TensorFormatError(.ggufCountPastEOF, "array of \(count) \(element.name) cannot fit in the \(remaining) bytes left")
            }
            let start = position
            if let size = element.fixedSize {
                _ = try take(Int(count) * size, "array")
                if element == .bool {
                    for i in start..<position where bytes[i] > 1 {
                        throw TensorFormatError(.ggufValueType, "array holds a BOOL that is neither 0 nor 1")
                    }
                }
            } else {
                for _ in 0..<Int(count) { _ = try string("array string") }
            }
            return .array(element: element, count: Int(count), bytes: start..<position)
        case .bool:
            let byte = bytes[try take(1, "BOOL value")]
            guard byte <= 1 else { throw TensorFormatError(.ggufValueType, "BOOL value is \(byte), neither 0 nor 1") }
            return .bool(byte == 1)
        case .u64:
            return .unsigned64(try u64("UINT64 value"))
        case .f32:
            return .float(.f32, Double(Float(bitPattern: try u32("FLOAT32 value"))))
        case .f64:
            return .float(.f64, Double(bitPattern: try u64("FLOAT64 value")))
        case .u8, .i8, .u16, .i16, .u32, .i32, .i64:
            let size = type.fixedSize!
            let at = try take(size, "\(type.name) value")
            let v: Int64 = switch type {
            case .u8: Int64(bytes[at])
            case .i8: Int64(Int8(bitPattern: bytes[at]))
            case .u16: Int64(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
            case .i16: Int64(Int16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: Int16.self)))
            case .u32: Int64(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
            case .i32: Int64(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: Int32.self)))
            default: Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: Int64.self))
            }
            return .integer(type, v)
        }
    }

    mutating func tensorInfo(name: String, alignment: Int) throws(TensorFormatError) -> GGUFTensorInfo {
        let nDims = try u32("dimension count")
        guard nDims <= UInt32(GGUFHeader.maximumDims) else {
            throw TensorFormatError(.invalidShape, "\(nDims) dimensions (at most \(GGUFHeader.maximumDims) are read)")
        }
        var dims: [Int] = []
        var elements = 1
        for _ in 0..<Int(nDims) {
            let dim = try u64("dimension")
            guard dim <= UInt64(Int.max) else { throw TensorFormatError(.invalidShape, "dimension \(dim) is past 2^63") }
            let (product, overflow) = elements.multipliedReportingOverflow(by: Int(dim))
            guard !overflow else { throw TensorFormatError(.sizeOverflow, "element count overflows") }
            elements = product
            dims.append(Int(dim))
        }
        let rawType = try u32("tensor type")
        guard let type = GGMLType(rawValue: rawType) else {
            if let known = GGMLType.knownUnsupported(rawType) {
                throw TensorFormatError(.unsupported, "ggml type \(known) is not decoded (supported: \(GGMLType.allCases.map(\.name).joined(separator: ", ")))")
            }
            throw TensorFormatError(.unknownDType, "unknown ggml type \(rawType)")
        }
        let offset = try u64("data offset")
        guard offset <= UInt64(Int.max) else { throw TensorFormatError(.invalidOffsets, "data offset \(offset) is past 2^63") }
        guard Int(offset) % alignment == 0 else {
            throw TensorFormatError(.ggufMisalignedOffset, "data offset \(offset) is not a multiple of the alignment \(alignment)")
        }
        guard (dims.first ?? 1) % type.blockSize == 0, let byteCount = type.byteCount(elements: elements) else {
            throw TensorFormatError(.invalidShape, "rows of \(dims.first ?? 1) are not whole \(type.name) blocks of \(type.blockSize)")
        }
        return GGUFTensorInfo(name: name, dims: dims, type: type, offset: Int(offset), byteCount: byteCount)
    }
}
