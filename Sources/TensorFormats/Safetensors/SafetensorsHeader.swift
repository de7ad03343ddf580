/// A parsed and validated safetensors header.
///
/// Validation is the reference reader's (safetensors 0.8.0) plus what it misses: duplicate keys,
/// which its JSON map silently merges (issue #401), are refused. formats/safetensors.md lists the rules.
public struct SafetensorsHeader: Sendable, Equatable {
    /// The reference reader's cap on the JSON header size.
    public static let maximumHeaderLength = 100_000_000

    /// Tensors in the order the header lists them.
    public var tensors: [TensorInfo]
    /// nil when the header has no `__metadata__` key (distinct from an empty map for exact rewrites).
    public var metadata: Metadata?
    /// N, the JSON length that the first 8 bytes declare (padding included).
    public var headerLength: Int

    /// Where the data buffer starts in the file.
    public var dataStart: Int { 8 + headerLength }

    /// Buffer length implied by the offsets (the largest end).
    public var dataLength: Int { tensors.map(\.dataOffsets.upperBound).max() ?? 0 }

    /// Tensors ordered by their place in the buffer.
    public var tensorsInStorageOrder: [TensorInfo] {
        tensors.sorted { ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound) }
    }

    public init(tensors: [TensorInfo], metadata: Metadata?, headerLength: Int) {
        self.tensors = tensors
        self.metadata = metadata
        self.headerLength = headerLength
    }

    /// Reads N from the first 8 bytes and checks it against the file size when that is known.
    public static func headerLength(prefix: UnsafeRawBufferPointer, fileSize: Int?) throws(TensorFormatError) -> Int {
        if let fileSize, fileSize < 8 {
            throw TensorFormatError(.tooSmall, "file is \(fileSize) bytes, shorter than the 8-byte header length")
        }
        guard prefix.count >= 8 else {
            throw TensorFormatError(.tooSmall, "input ended after \(prefix.count) bytes, before the 8-byte header length")
        }
        let raw = prefix.loadUnaligned(as: UInt64.self).littleEndian
        guard raw <= UInt64(maximumHeaderLength) else {
            throw TensorFormatError(.headerTooLarge, "header length \(raw) exceeds the limit of \(maximumHeaderLength) bytes")
        }
        let n = Int(raw)
        if let fileSize, 8 + n > fileSize {
            throw TensorFormatError(.headerPastEOF, "header length \(n) runs past the end of the \(fileSize)-byte file")
        }
        return n
    }

    /// Parses and validates the JSON header. `fileSize` nil means a stream: the buffer end is then
    /// checked by the reader when it reaches the end of input.
    public static func parse(json: UnsafeRawBufferPointer, fileSize: Int?) throws(TensorFormatError) -> SafetensorsHeader {
        guard isValidUTF8(json) else { throw TensorFormatError(.headerNotUTF8, "header is not valid UTF-8") }
        let value: JSONValue
        do {
            value = try JSONParser.parse(json)
        } catch {
            switch error.kind {
            case .duplicateKey(let key, nil) where key == "__metadata__":
                throw TensorFormatError(.duplicateKey, "header has two __metadata__ objects")
            case .duplicateKey(let key, nil):
                throw TensorFormatError(.duplicateKey, "header lists the tensor twice", tensor: key)
            case .duplicateKey(let key, "__metadata__"?):
                throw TensorFormatError(.duplicateKey, "metadata repeats the key '\(key)'")
            case .duplicateKey(let key, let parent?):
                throw TensorFormatError(.duplicateKey, "entry repeats the field '\(key)'", tensor: parent)
            default: throw TensorFormatError(.headerInvalidJSON, "header is not valid JSON: \(error.message)", cause: error)
            }
        }
        guard case .object(let members) = value else {
            throw TensorFormatError(.headerNotObject, "header is JSON but not an object")
        }
        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(members.count)
        var metadata: Metadata?
        for member in members {
            if member.key == "__metadata__" {
                metadata = try parseMetadata(member.value)
            } else {
                tensors.append(try parseEntry(name: member.key, member.value))
            }
        }
        let header = SafetensorsHeader(tensors: tensors, metadata: metadata, headerLength: json.count)
        let end = try header.validateLayout()
        if let fileSize {
            let bufferSize = fileSize - 8 - json.count
            if end < bufferSize {
                throw TensorFormatError(.trailingBytes, "\(bufferSize - end) bytes follow the last tensor's data (the buffer must end the file)")
            }
            if end > bufferSize {
                // Name the tensor the file ends inside, if it ends inside one.
                let cut = header.tensors.first { $0.dataOffsets.lowerBound < bufferSize && $0.dataOffsets.upperBound > bufferSize }
                throw TensorFormatError(.truncated, "data needs \(end) bytes but the file holds \(bufferSize) after the header", tensor: cut?.name)
            }
        }
        return header
    }

    /// The reference's tiling rule: sorted by offsets, tensors start at 0 and follow each other with
    /// no hole or overlap, and each span is exactly dtype bits × elements / 8. Returns the buffer end.
    func validateLayout() throws(TensorFormatError) -> Int {
        var position = 0
        for tensor in tensorsInStorageOrder {
            guard tensor.dataOffsets.lowerBound == position else {
                let what = tensor.dataOffsets.lowerBound > position ? "leaves a hole" : "overlaps the previous tensor"
                throw TensorFormatError(.offsetsNotContiguous,
                                        "data starts at \(tensor.dataOffsets.lowerBound) but the previous tensor ends at \(position): it \(what)",
                                        tensor: tensor.name)
            }
            guard let bytes = tensor.dtype.byteCount(elements: tensor.elementCount) else {
                throw TensorFormatError(.misalignedBits, "\(tensor.elementCount) elements of \(tensor.dtype.rawValue) are not a whole number of bytes", tensor: tensor.name)
            }
            guard bytes == tensor.byteCount else {
                throw TensorFormatError(.sizeMismatch, "offsets span \(tensor.byteCount) bytes but \(tensor.dtype.rawValue) \(tensor.shape) needs \(bytes)", tensor: tensor.name)
            }
            position = tensor.dataOffsets.upperBound
        }
        return position
    }

    private static func parseMetadata(_ value: JSONValue) throws(TensorFormatError) -> Metadata? {
        switch value {
        case .null:
            return nil
        case .object(let members):
            var pairs: [(String, String)] = []
            for member in members {
                guard case .string(let text) = member.value else {
                    throw TensorFormatError(.invalidMetadata, "metadata value of '\(member.key)' is not a string")
                }
                pairs.append((member.key, text))
            }
            return Metadata(pairs)
        default:
            throw TensorFormatError(.invalidMetadata, "__metadata__ is not an object of strings")
        }
    }

    private static func parseEntry(name: String, _ value: JSONValue) throws(TensorFormatError) -> TensorInfo {
        guard case .object = value else {
            throw TensorFormatError(.missingField, "entry is not an object with dtype, shape and data_offsets", tensor: name)
        }
        guard let dtypeValue = value["dtype"] else { throw TensorFormatError(.missingField, "entry has no dtype", tensor: name) }
        guard let shapeValue = value["shape"] else { throw TensorFormatError(.missingField, "entry has no shape", tensor: name) }
        guard let offsetsValue = value["data_offsets"] else { throw TensorFormatError(.missingField, "entry has no data_offsets", tensor: name) }
        guard let dtypeName = dtypeValue.stringValue, let dtype = DType(rawValue: dtypeName) else {
            throw TensorFormatError(.unknownDType, "unknown dtype \(JSONWriter.compact(dtypeValue))", tensor: name)
        }
        guard case .array(let dims) = shapeValue else {
            throw TensorFormatError(.invalidShape, "shape is not an array", tensor: name)
        }
        var shape: [Int] = []
        var elements = 1
        for dim in dims {
            guard let raw = dim.unsignedValue else {
                throw TensorFormatError(.invalidShape, "dimension \(JSONWriter.compact(dim)) is not a non-negative integer", tensor: name)
            }
            guard raw <= UInt64(Int.max) else {
                throw TensorFormatError(.sizeOverflow, "dimension \(raw) overflows the element count", tensor: name)
            }
            let (product, overflow) = elements.multipliedReportingOverflow(by: Int(raw))
            guard !overflow else { throw TensorFormatError(.sizeOverflow, "element count of shape \(dims.map { JSONWriter.compact($0) }) overflows", tensor: name) }
            elements = product
            shape.append(Int(raw))
        }
        guard dtype.bitsPerElement.multipliedReportingOverflow(by: elements).overflow == false else {
            throw TensorFormatError(.sizeOverflow, "bit count of \(elements) \(dtype.rawValue) elements overflows", tensor: name)
        }
        guard case .array(let offsets) = offsetsValue, offsets.count == 2,
              let begin = offsets[0].unsignedValue, let end = offsets[1].unsignedValue,
              begin <= UInt64(Int.max), end <= UInt64(Int.max) else {
            throw TensorFormatError(.invalidOffsets, "data_offsets must be two non-negative integers, got \(JSONWriter.compact(offsetsValue))", tensor: name)
        }
        guard begin <= end else {
            throw TensorFormatError(.invalidOffsets, "data_offsets begin \(begin) is after end \(end)", tensor: name)
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: Int(begin)..<Int(end))
    }

    private static func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    // MARK: - Writing

    /// Lays out tensors as the reference writer does: sorted by dtype (descending enum order), then by
    /// name (byte order), packed from offset 0, header padded with spaces to a multiple of 8.
    public static func layout(_ specs: [(name: String, dtype: DType, shape: [Int])], metadata: Metadata?) -> SafetensorsHeader {
        let sorted = specs.sorted { lhs, rhs in
            if lhs.dtype != rhs.dtype { return lhs.dtype.referenceOrder > rhs.dtype.referenceOrder }
            return lhs.name.utf8.lexicographicallyPrecedes(rhs.name.utf8)
        }
        var offset = 0
        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(sorted.count)
        for spec in sorted {
            let elements = MemoryBudget.product(spec.shape) ?? Int.max
            let bytes = spec.dtype.byteCount(elements: elements)!
            tensors.append(TensorInfo(name: spec.name, dtype: spec.dtype, shape: spec.shape, dataOffsets: offset..<(offset + bytes)))
            offset += bytes
        }
        var header = SafetensorsHeader(tensors: tensors, metadata: metadata, headerLength: 0)
        header.headerLength = header.serializedJSON().utf8.count
        header.headerLength += (8 - header.headerLength % 8) % 8
        return header
    }

    /// The compact JSON the reference writes (without padding).
    public func serializedJSON() -> String {
        var members: [JSONMember] = []
        members.reserveCapacity(tensors.count + 1)
        if let metadata { members.append(JSONMember("__metadata__", metadata.json)) }
        for tensor in tensors {
            members.append(JSONMember(tensor.name, .object([
                JSONMember("dtype", .string(tensor.dtype.rawValue)),
                JSONMember("shape", .ints(tensor.shape)),
                JSONMember("data_offsets", .ints([tensor.dataOffsets.lowerBound, tensor.dataOffsets.upperBound])),
            ])))
        }
        return JSONWriter.compact(.object(members))
    }

    /// The 8-byte length followed by the padded JSON: everything that precedes the data buffer.
    public func serializedPrefix() -> [UInt8] {
        var json = Array(serializedJSON().utf8)
        let padded = max(headerLength, json.count + (8 - json.count % 8) % 8)
        json.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padded - json.count))
        var out = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) }
        out.append(contentsOf: json)
        return out
    }
}
