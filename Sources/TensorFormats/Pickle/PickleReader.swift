/// Reads opcode arguments from pickle bytes; every count is checked against what remains first.
struct PickleReader {
    let bytes: UnsafeRawBufferPointer
    var position: Int

    var remaining: Int { bytes.count - position }

    private func truncated(_ needed: Int) -> TensorFormatError {
        TensorFormatError(.pickleInvalid, "pickle ends at byte \(bytes.count), \(needed) more bytes were needed at byte \(position)")
    }

    mutating func byte() throws(TensorFormatError) -> UInt8 {
        guard remaining >= 1 else { throw truncated(1) }
        defer { position += 1 }
        return bytes[position]
    }

    /// A little-endian unsigned integer of `count` (1...8) bytes.
    mutating func unsigned(_ count: Int) throws(TensorFormatError) -> UInt64 {
        guard remaining >= count else { throw truncated(count) }
        var value: UInt64 = 0
        for i in 0..<count { value |= UInt64(bytes[position + i]) << (8 * UInt64(i)) }
        position += count
        return value
    }

    mutating func bigEndian64() throws(TensorFormatError) -> UInt64 {
        guard remaining >= 8 else { throw truncated(8) }
        var value: UInt64 = 0
        for i in 0..<8 { value = value << 8 | UInt64(bytes[position + i]) }
        position += 8
        return value
    }

    /// A length prefix of `lengthBytes` bytes, checked against the bytes that remain.
    private mutating func length(_ lengthBytes: Int) throws(TensorFormatError) -> Int {
        let declared = try unsigned(lengthBytes)
        guard declared <= UInt64(remaining) else {
            throw TensorFormatError(.pickleInvalid, "length \(declared) runs past the end of the pickle (\(remaining) bytes left at byte \(position))")
        }
        return Int(declared)
    }

    mutating func counted(lengthBytes: Int) throws(TensorFormatError) -> [UInt8] {
        let n = try length(lengthBytes)
        defer { position += n }
        return Array(bytes[position..<(position + n)])
    }

    mutating func utf8(lengthBytes: Int) throws(TensorFormatError) -> String {
        let n = try length(lengthBytes)
        defer { position += n }
        guard let text = String(validating: bytes[position..<(position + n)], as: UTF8.self) else {
            throw TensorFormatError(.pickleInvalid, "string at byte \(position) is not UTF-8")
        }
        return text
    }

    /// LONG1 / LONG4: little-endian two's complement; beyond 64 bits the bytes are kept as they are.
    mutating func long(lengthBytes: Int) throws(TensorFormatError) -> PickleValue {
        let n = try length(lengthBytes)
        defer { position += n }
        let digits = bytes[position..<(position + n)]
        if n == 0 { return .int(0) }
        if n > 8 { return .bigInt(Array(digits)) }
        var value: UInt64 = 0
        for (i, byte) in digits.enumerated() { value |= UInt64(byte) << (8 * UInt64(i)) }
        if n < 8, digits.last! & 0x80 != 0 { value |= ~0 << (8 * UInt64(n)) }
        return .int(Int(Int64(bitPattern: value)))
    }

    /// A protocol 0 argument: the bytes up to the next newline.
    mutating func line() throws(TensorFormatError) -> String {
        let limit = min(bytes.count, position + TorchUnpickler.maximumLine)
        var end = position
        while end < limit, bytes[end] != 0x0A { end += 1 }
        guard end < limit else {
            throw TensorFormatError(.pickleInvalid, "no newline within \(TorchUnpickler.maximumLine) bytes after byte \(position)")
        }
        defer { position = end + 1 }
        return String(decoding: bytes[position..<end], as: UTF8.self)
    }

    /// INT / LONG: a decimal (protocol 0 writes booleans as `01` / `00`).
    mutating func textInt() throws(TensorFormatError) -> PickleValue {
        var text = try line()
        if text.hasSuffix("L") { text.removeLast() }
        guard let value = Int(text) else { throw TensorFormatError(.pickleInvalid, "integer argument '\(text.prefix(40))' out of range") }
        return .int(value)
    }

    /// PUT / GET: a decimal memo index.
    mutating func textIndex() throws(TensorFormatError) -> Int {
        let text = try line()
        guard let value = Int(text), value >= 0 else { throw TensorFormatError(.pickleInvalid, "memo index '\(text.prefix(40))' is not a number") }
        return value
    }

    /// pickletools' name of an opcode, for messages.
    static func name(_ opcode: UInt8) -> String {
        switch opcode {
        case 0x6F: return "OBJ"
        case 0x69: return "INST"
        case 0x82: return "EXT1"
        case 0x83: return "EXT2"
        case 0x84: return "EXT4"
        case 0x97: return "NEXT_BUFFER"
        case 0x98: return "READONLY_BUFFER"
        case 0x50: return "PERSID"
        default:
            let scalar = UnicodeScalar(opcode)
            return opcode >= 0x20 && opcode < 0x7F ? "'\(Character(scalar))'" : "not an opcode"
        }
    }
}
