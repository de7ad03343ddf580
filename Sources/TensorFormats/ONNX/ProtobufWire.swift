/// A reader of protobuf's wire format over a mapped file, for walking an ONNX ModelProto without
/// decoding it: a 1.7 GB model's `raw_data` stays in the map and only byte ranges are recorded.
///
/// Every varint is at most 10 bytes and fits 64 bits; every length-delimited field lies inside the
/// message that holds it; field numbers are 1 ... 2^29 - 1 and wire types 0, 1, 2 or 5 (ONNX has no
/// groups). Any other byte sequence is `onnx-wire`, with the offset where it went wrong.
struct ProtobufWire {
    enum WireType: Int {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5
    }

    /// One field of a message: its number, wire type, and either its value (varint, fixed) or the
    /// absolute byte range of its payload (length-delimited).
    struct Field {
        var number: Int
        var wireType: WireType
        var value: UInt64
        var payload: Range<Int>
        /// The field's bytes including its key, for re-encoding the small fields of a message.
        var whole: Range<Int>
    }

    let bytes: UnsafeRawBufferPointer
    private(set) var position: Int
    let end: Int
    /// What the walk is in, for messages (`ModelProto`, `initializer 'conv.weight'`).
    let context: String

    init(_ bytes: UnsafeRawBufferPointer, range: Range<Int>, context: String) {
        self.bytes = bytes
        self.position = range.lowerBound
        self.end = range.upperBound
        self.context = context
    }

    private func fail(_ what: String, at offset: Int) -> TensorFormatError {
        TensorFormatError(.onnxWire, "\(context): \(what) at byte \(offset)")
    }

    /// A varint: at most 10 bytes, the tenth holding only the 64th bit.
    mutating func varint() throws(TensorFormatError) -> UInt64 {
        let start = position
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else { throw fail("varint runs past the end of the message", at: start) }
            let byte = bytes[position]
            position += 1
            if shift == 63, byte > 1 { throw fail("varint overflows 64 bits", at: start) }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// The next field, or nil at the end of the message.
    mutating func next() throws(TensorFormatError) -> Field? {
        guard position < end else { return nil }
        let start = position
        let key = try varint()
        let number = key >> 3
        guard number >= 1, number < 1 << 29 else { throw fail("field number \(number)", at: start) }
        guard let type = WireType(rawValue: Int(key & 7)) else { throw fail("wire type \(key & 7) (groups and unknown types are not ONNX)", at: start) }
        var value: UInt64 = 0
        var payload = position..<position
        switch type {
        case .varint:
            value = try varint()
        case .fixed64, .fixed32:
            let width = type == .fixed64 ? 8 : 4
            guard end - position >= width else { throw fail("fixed-width field runs past the end of the message", at: start) }
            for i in 0..<width { value |= UInt64(bytes[position + i]) << (8 * UInt64(i)) }
            payload = position..<(position + width)
            position += width
        case .lengthDelimited:
            let lengthAt = position
            let length = try varint()
            guard length <= UInt64(end - position) else {
                throw fail("length \(length) runs past the end of the message (\(end - position) bytes left)", at: lengthAt)
            }
            payload = position..<(position + Int(length))
            position += Int(length)
        }
        return Field(number: Int(number), wireType: type, value: value, payload: payload, whole: start..<position)
    }

    /// Requires a field's wire type, so a varint is never read as a message or the reverse.
    func expect(_ field: Field, _ type: WireType, _ name: String) throws(TensorFormatError) {
        guard field.wireType == type else {
            throw fail("field \(name) (\(field.number)) has wire type \(field.wireType.rawValue)", at: field.whole.lowerBound)
        }
    }

    /// A length-delimited payload as UTF-8 text (names); invalid UTF-8 is `onnx-wire`.
    func string(_ field: Field, _ name: String) throws(TensorFormatError) -> String {
        try expect(field, .lengthDelimited, name)
        guard let text = String(validating: bytes[field.payload], as: UTF8.self) else {
            throw fail("field \(name) is not UTF-8", at: field.payload.lowerBound)
        }
        return text
    }

    /// Copies of the bytes of `ranges`, concatenated: the small fields of a message, decoded apart from
    /// its large payloads.
    func copy(_ ranges: [Range<Int>]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(ranges.reduce(0) { $0 + $1.count })
        for range in ranges { out.append(contentsOf: bytes[range]) }
        return out
    }
}
