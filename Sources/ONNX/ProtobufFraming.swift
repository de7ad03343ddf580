/// The few protobuf wire-format pieces the writer frames by hand: a length-delimited field's key and
/// length. Protobuf parsers merge repeated fields and accept fields in any order, so a message may be
/// written as its small fields (serialized by swift-protobuf) followed by records appended one by one;
/// that is how initializers' payloads are streamed without ever holding the whole message.
enum ProtobufFraming {
    /// Wire type 2 (length-delimited).
    static func key(field: Int) -> [UInt8] { varint(UInt64(field << 3 | 2)) }

    static func varint(_ value: UInt64) -> [UInt8] {
        var v = value
        var out: [UInt8] = []
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
        return out
    }

    /// Bytes of a length-delimited field holding `length` bytes: key, length varint, payload.
    static func fieldSize(field: Int, length: Int) -> Int {
        key(field: field).count + varint(UInt64(length)).count + length
    }
}
