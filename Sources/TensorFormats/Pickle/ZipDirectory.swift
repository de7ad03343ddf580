/// The central directory of a zip file, read from a mapped file, with the data offset of every entry.
///
/// Hand-written rather than ZIPFoundation: what the torch reader needs is where each stored entry's
/// bytes start in the file, so it can point into the map instead of copying (ZIPFoundation only hands
/// out entry contents through its extraction API, and its data offsets are internal), and it is the
/// hostile-input surface, so it must be small enough to fuzz and review. It reads the end-of-central-
/// directory record (and its zip64 form), the central directory and each local header; every offset
/// and size is checked against the file size before it is used. CRCs are not checked (`verify`'s sha256
/// covers integrity); compressed and encrypted entries are listed and refused when read.
public struct ZipDirectory: Sendable {
    public struct Entry: Sendable {
        public var name: String
        /// 0 stored, 8 deflate, ...
        public var method: UInt16
        public var flags: UInt16
        public var compressedSize: Int
        public var uncompressedSize: Int
        public var localHeaderOffset: Int
    }

    public private(set) var entries: [Entry] = []
    /// By the names' bytes, as zip readers compare them.
    private var indexByName: [ByteKey: Int] = [:]
    /// Where the central directory starts: entry data must end before it.
    public private(set) var directoryStart = 0
    private let fileSize: Int

    /// The end record's signature; sniffing also uses it (an empty zip is only this).
    static let endSignature: UInt32 = 0x0605_4B50

    public init(_ bytes: UnsafeRawBufferPointer) throws(TensorFormatError) {
        fileSize = bytes.count
        var reader = ZipBytes(bytes: bytes)
        // The end record is the last 22 bytes plus a comment of at most 65535 bytes.
        guard bytes.count >= 22 else { throw Self.invalid("file is \(bytes.count) bytes, too short for a zip end record") }
        var end = bytes.count - 22
        let lowest = max(0, bytes.count - 22 - 0xFFFF)
        while end >= lowest, try reader.u32(end) != Self.endSignature { end -= 1 }
        guard end >= lowest else { throw Self.invalid("no end-of-central-directory record") }
        var count = Int(try reader.u16(end + 10))
        var size = Int(try reader.u32(end + 12))
        var start = Int(try reader.u32(end + 16))
        var directoryEnd = end
        // zip64: a locator just before the end record points at the zip64 end record.
        if end >= 20, try reader.u32(end - 20) == 0x0706_4B50 {
            let recordOffset = try reader.u64(end - 12)
            guard recordOffset <= end - 20 - 56 else { throw Self.invalid("zip64 end record offset \(recordOffset) lies outside the file") }
            guard try reader.u32(recordOffset) == 0x0606_4B50 else { throw Self.invalid("no zip64 end record at \(recordOffset)") }
            count = try reader.u64(recordOffset + 32)
            size = try reader.u64(recordOffset + 40)
            start = try reader.u64(recordOffset + 48)
            directoryEnd = recordOffset
        }
        guard start <= directoryEnd, size <= directoryEnd - start else {
            throw Self.invalid("central directory (\(start), \(size) bytes) lies outside the file")
        }
        guard count <= size / 46 else { throw Self.invalid("\(count) entries cannot fit a \(size)-byte central directory") }
        directoryStart = start
        var position = start
        for _ in 0..<count {
            let entry = try Self.entry(at: &position, limit: start + size, reader: &reader)
            guard indexByName.updateValue(entries.count, forKey: ByteKey(entry.name)) == nil else {
                throw Self.invalid("entry '\(printable(entry.name))' appears twice")
            }
            entries.append(entry)
        }
    }

    private static func entry(at position: inout Int, limit: Int, reader: inout ZipBytes) throws(TensorFormatError) -> Entry {
        guard position + 46 <= limit, try reader.u32(position) == 0x0201_4B50 else {
            throw invalid("central directory entry at \(position) is missing or cut short")
        }
        let flags = UInt16(try reader.u16(position + 8))
        let method = UInt16(try reader.u16(position + 10))
        var compressed = Int(try reader.u32(position + 20))
        var uncompressed = Int(try reader.u32(position + 24))
        let nameLength = Int(try reader.u16(position + 28))
        let extraLength = Int(try reader.u16(position + 30))
        let commentLength = Int(try reader.u16(position + 32))
        var local = Int(try reader.u32(position + 42))
        let nameStart = position + 46
        guard nameStart + nameLength + extraLength + commentLength <= limit else {
            throw invalid("central directory entry at \(position) runs past the directory")
        }
        let name = String(decoding: reader.bytes[nameStart..<(nameStart + nameLength)], as: UTF8.self)
        // zip64 extra field: the 64-bit values of the fields set to 0xFFFFFFFF, in this order.
        var extra = nameStart + nameLength
        let extraEnd = extra + extraLength
        while extra + 4 <= extraEnd {
            let id = try reader.u16(extra), length = Int(try reader.u16(extra + 2))
            guard extra + 4 + length <= extraEnd else { throw invalid("extra field of '\(printable(name))' runs past its entry") }
            if id == 0x0001 {
                var field = extra + 4
                for keyPath in [0, 1, 2] {
                    let isSet = keyPath == 0 ? uncompressed == 0xFFFF_FFFF : keyPath == 1 ? compressed == 0xFFFF_FFFF : local == 0xFFFF_FFFF
                    guard isSet else { continue }
                    guard field + 8 <= extra + 4 + length else { throw invalid("zip64 field of '\(printable(name))' is too short") }
                    let value = try reader.u64(field)
                    switch keyPath {
                    case 0: uncompressed = value
                    case 1: compressed = value
                    default: local = value
                    }
                    field += 8
                }
            }
            extra += 4 + length
        }
        position = extraEnd + commentLength
        return Entry(name: name, method: method, flags: flags, compressedSize: compressed, uncompressedSize: uncompressed,
                     localHeaderOffset: local)
    }

    public func entry(named name: String) -> Entry? { indexByName[ByteKey(name)].map { entries[$0] } }

    /// The file range of a stored entry's bytes, read from its local header and checked against the
    /// file and the central directory; a compressed or encrypted entry is refused.
    public func storedRange(of entry: Entry, _ bytes: UnsafeRawBufferPointer) throws(TensorFormatError) -> Range<Int> {
        guard entry.flags & 1 == 0 else { throw Self.invalid("entry '\(printable(entry.name))' is encrypted") }
        guard entry.method == 0 else {
            throw TensorFormatError(.zipCompressed, "entry '\(printable(entry.name))' is compressed (method \(entry.method)); torch stores its records uncompressed, so the file was repacked: unzip and re-zip it with -0 (store)")
        }
        guard entry.compressedSize == entry.uncompressedSize else { throw Self.invalid("stored entry '\(printable(entry.name))' has two sizes") }
        let reader = ZipBytes(bytes: bytes)
        let local = entry.localHeaderOffset
        guard local <= directoryStart - 30, try reader.u32(local) == 0x0403_4B50 else {
            throw Self.invalid("local header of '\(printable(entry.name))' at \(local) is missing")
        }
        let start = local + 30 + (try reader.u16(local + 26)) + (try reader.u16(local + 28))
        guard start <= directoryStart, entry.compressedSize <= directoryStart - start else {
            throw Self.invalid("data of '\(printable(entry.name))' (\(entry.compressedSize) bytes at \(start)) runs past the file's entries")
        }
        return start..<(start + entry.compressedSize)
    }

    static func invalid(_ message: String) -> TensorFormatError { TensorFormatError(.zipInvalid, message) }
}

/// Little-endian reads at absolute offsets, each checked against the buffer.
private struct ZipBytes {
    let bytes: UnsafeRawBufferPointer

    private func read(_ offset: Int, _ count: Int) throws(TensorFormatError) -> UInt64 {
        guard offset >= 0, offset <= bytes.count - count else {
            throw ZipDirectory.invalid("a field at \(offset) lies outside the \(bytes.count)-byte file")
        }
        var value: UInt64 = 0
        for i in 0..<count { value |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        return value
    }

    func u16(_ offset: Int) throws(TensorFormatError) -> Int { Int(try read(offset, 2)) }
    func u32(_ offset: Int) throws(TensorFormatError) -> UInt32 { UInt32(try read(offset, 4)) }
    /// A 64-bit size or offset, refused beyond Int.max (no file is that large).
    func u64(_ offset: Int) throws(TensorFormatError) -> Int {
        let value = try read(offset, 8)
        guard value <= UInt64(Int.max) else { throw ZipDirectory.invalid("64-bit field at \(offset) is out of range") }
        return Int(value)
    }
}
