import CZlib
import Foundation

/// Writes a state dict as `torch.save` does (torch >= 1.6's zip container, formats/pickle.md, "Writing"),
/// so that `torch.load(weights_only=True)` and the A1111-era tools that load `.ckpt`/`.pt` files read
/// it: `NAME/data.pkl` (a protocol-2 pickle of a plain dict of `torch._utils._rebuild_tensor_v2` calls
/// over persistent storages), one stored record per tensor (`NAME/data/N`, 64-byte aligned as torch
/// aligns them, so `torch.load(mmap=True)` works), and torch's small records. Records are streamed:
/// each local header says "sizes follow" (flag bit 3, as torch writes them) and a data descriptor with
/// the CRC-32 follows the data, so no tensor is read twice; zip64 records appear only where a size or
/// an offset passes 4 GiB.
public struct TorchZipWriter {
    public struct Tensor: Sendable {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        public let byteCount: Int
    }

    public let tensors: [Tensor]
    /// The archive's top folder (torch uses the file's stem; any single folder name loads).
    public let archive: String

    /// The storage class torch pickles for each dtype it can hold in a weights_only file.
    static let storageClass: [DType: String] = [
        .f64: "DoubleStorage", .f32: "FloatStorage", .f16: "HalfStorage", .bf16: "BFloat16Storage",
        .i64: "LongStorage", .i32: "IntStorage", .i16: "ShortStorage", .i8: "CharStorage", .u8: "ByteStorage", .bool: "BoolStorage",
    ]

    /// Plans the archive; a dtype torch's pickle format has no storage class for is refused.
    public init(tensors: [(name: String, dtype: DType, shape: [Int])], archive: String, file: String) throws(TensorFormatError) {
        var planned: [Tensor] = []
        for tensor in tensors {
            guard TorchZipWriter.storageClass[tensor.dtype] != nil else {
                throw TensorFormatError(.unsupported, "\(tensor.dtype.rawValue) has no storage class in torch's pickle format (it holds \(TorchZipWriter.storageClass.keys.map(\.rawValue).sorted().joined(separator: ", "))); cast it with --dtype or write safetensors",
                                        file: file, tensor: tensor.name)
            }
            guard let count = MemoryBudget.product(tensor.shape), let bytes = tensor.dtype.byteCount(elements: count) else {
                throw TensorFormatError(.sizeOverflow, "shape \(tensor.shape) overflows a byte count", file: file, tensor: tensor.name)
            }
            planned.append(Tensor(name: tensor.name, dtype: tensor.dtype, shape: tensor.shape, byteCount: bytes))
        }
        self.tensors = planned
        let safe = archive.unicodeScalars.filter { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "_" || $0 == "-") }
        self.archive = safe.isEmpty ? "archive" : String(String.UnicodeScalarView(safe))
    }

    /// Writes the archive; `produce` supplies each tensor's bytes in order, in as many pieces as it likes.
    public func write(to output: OutputFile, produce: (Tensor, (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        var zip = ZipStream(output: output)
        try zip.add("\(archive)/data.pkl", bytes: pickle())
        try zip.add("\(archive)/.format_version", bytes: Array("1".utf8))
        try zip.add("\(archive)/.storage_alignment", bytes: Array("64".utf8))
        try zip.add("\(archive)/byteorder", bytes: Array("little".utf8))
        for (index, tensor) in tensors.enumerated() {
            try zip.begin("\(archive)/data/\(index)", size: tensor.byteCount)
            var written = 0
            try produce(tensor) { piece in
                written += piece.count
                guard written <= tensor.byteCount else {
                    throw TensorFormatError(.sizeMismatch, "more bytes supplied than the tensor holds", file: output.path, tensor: tensor.name)
                }
                try zip.data(piece)
            }
            guard written == tensor.byteCount else {
                throw TensorFormatError(.sizeMismatch, "\(written) bytes supplied, the tensor holds \(tensor.byteCount)", file: output.path, tensor: tensor.name)
            }
            try zip.end()
        }
        try zip.add("\(archive)/version", bytes: Array("3\n".utf8))
        try zip.add("\(archive)/.data/serialization_id", bytes: Array(serializationID().utf8))
        try zip.finish()
    }

    /// torch writes 40 random digits; these are derived from the names and shapes, so the same state
    /// dict gives the same bytes.
    private func serializationID() -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for tensor in tensors {
            for byte in Array("\(tensor.name) \(tensor.dtype.rawValue) \(tensor.shape)\n".utf8) {
                hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
            }
        }
        var digits = ""
        while digits.count < 40 {
            hash = (hash ^ (hash >> 33)) &* 0xff51_afd7_ed55_8ccd
            digits += String(format: "%020llu", hash)
        }
        return String(digits.prefix(40))
    }

    /// `{name: _rebuild_tensor_v2(persistent_load(('storage', torch.XStorage, 'N', 'cpu', numel)), 0,
    /// shape, contiguous strides, False, OrderedDict())}`, the pickle torch.save writes (memo aside).
    func pickle() -> [UInt8] {
        var p = PickleBytes()
        p.op(0x80); p.op(2)  // PROTO 2
        p.op(UInt8(ascii: "}"))  // EMPTY_DICT
        if !tensors.isEmpty { p.op(UInt8(ascii: "(")) }  // MARK
        for (index, tensor) in tensors.enumerated() {
            p.unicode(tensor.name)
            p.global("torch._utils", "_rebuild_tensor_v2")
            p.op(UInt8(ascii: "("))
            p.op(UInt8(ascii: "("))
            p.unicode("storage")
            p.global("torch", TorchZipWriter.storageClass[tensor.dtype]!)
            p.unicode(String(index))
            p.unicode("cpu")
            p.int(tensor.shape.reduce(1, *))
            p.op(UInt8(ascii: "t"))  // TUPLE
            p.op(UInt8(ascii: "Q"))  // BINPERSID
            p.int(0)
            p.tuple(tensor.shape)
            var strides = [Int](repeating: 1, count: tensor.shape.count)
            for axis in tensor.shape.indices.dropLast().reversed() { strides[axis] = strides[axis + 1] * tensor.shape[axis + 1] }
            p.tuple(strides)
            p.op(0x89)  // NEWFALSE
            p.global("collections", "OrderedDict")
            p.op(UInt8(ascii: ")"))  // EMPTY_TUPLE
            p.op(UInt8(ascii: "R"))  // REDUCE
            p.op(UInt8(ascii: "t"))
            p.op(UInt8(ascii: "R"))
        }
        if !tensors.isEmpty { p.op(UInt8(ascii: "u")) }  // SETITEMS
        p.op(UInt8(ascii: "."))  // STOP
        return p.bytes
    }
}

/// The few pickle opcodes a state dict needs.
private struct PickleBytes {
    var bytes: [UInt8] = []

    mutating func op(_ code: UInt8) { bytes.append(code) }

    mutating func unicode(_ text: String) {
        let utf8 = Array(text.utf8)
        op(UInt8(ascii: "X"))  // BINUNICODE
        appendLE(UInt32(utf8.count))
        bytes += utf8
    }

    mutating func global(_ module: String, _ name: String) {
        op(UInt8(ascii: "c"))
        bytes += Array("\(module)\n\(name)\n".utf8)
    }

    mutating func int(_ value: Int) {
        switch value {
        case 0...0xff: op(UInt8(ascii: "K")); op(UInt8(value))
        case 0...0xffff: op(UInt8(ascii: "M")); appendLE(UInt16(value))
        case Int(Int32.min)...Int(Int32.max): op(UInt8(ascii: "J")); appendLE(UInt32(bitPattern: Int32(value)))
        default:
            op(0x8a); op(8)  // LONG1, 8 bytes of two's complement
            appendLE(UInt64(bitPattern: Int64(value)))
        }
    }

    mutating func tuple(_ values: [Int]) {
        switch values.count {
        case 0: op(UInt8(ascii: ")"))
        case 1...3:
            for value in values { int(value) }
            op(0x85 + UInt8(values.count - 1))  // TUPLE1..3
        default:
            op(UInt8(ascii: "("))
            for value in values { int(value) }
            op(UInt8(ascii: "t"))
        }
    }

    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }
}

/// A stored (uncompressed) zip written front to back: local header, data, data descriptor per record,
/// then the central directory.
private struct ZipStream {
    let output: OutputFile
    private var entries: [(name: [UInt8], offset: Int, size: Int, crc: UInt32)] = []
    private var current: (name: [UInt8], offset: Int, size: Int, crc: UInt32, written: Int)?
    /// Every record's data starts at a multiple of this (torch's `.storage_alignment`).
    static let alignment = 64
    static let limit32 = 0xffff_ffff

    init(output: OutputFile) {
        self.output = output
    }

    mutating func add(_ name: String, bytes: [UInt8]) throws {
        try begin(name, size: bytes.count)
        try bytes.withUnsafeBytes { try data($0) }
        try end()
    }

    /// A local header announcing `size` bytes; zip64 when the size or the offset passes 4 GiB.
    mutating func begin(_ name: String, size: Int) throws {
        let nameBytes = Array(name.utf8)
        let offset = output.bytesWritten
        let zip64 = size >= ZipStream.limit32 || offset >= ZipStream.limit32
        var header = ZipBytes()
        header.u32(0x0403_4b50)
        header.u16(zip64 ? 45 : 20)  // version needed
        header.u16(0x0808)  // sizes in a data descriptor; UTF-8 names
        header.u16(0)  // stored
        header.u16(0); header.u16(0x21)  // time 00:00, date 1980-01-01
        header.u32(0)  // crc in the descriptor
        header.u32(zip64 ? UInt32.max : 0); header.u32(zip64 ? UInt32.max : 0)
        header.u16(UInt16(nameBytes.count))
        var extra = ZipBytes()
        if zip64 {
            extra.u16(0x0001); extra.u16(16); extra.u64(0); extra.u64(0)
        }
        // torch's "FB" padding field, so the data lands on the alignment.
        let unpadded = offset + 30 + nameBytes.count + extra.bytes.count + 4
        let pad = (ZipStream.alignment - unpadded % ZipStream.alignment) % ZipStream.alignment
        extra.u16(0x4246); extra.u16(UInt16(pad)); extra.bytes += [UInt8](repeating: 0x5a, count: pad)
        header.u16(UInt16(extra.bytes.count))
        header.bytes += nameBytes + extra.bytes
        try output.write(header.bytes)
        current = (nameBytes, offset, size, 0, 0)
    }

    mutating func data(_ piece: UnsafeRawBufferPointer) throws {
        guard var record = current, let base = piece.baseAddress else { return }
        var crc = UInt(record.crc)
        var done = 0
        while done < piece.count {
            let n = min(piece.count - done, 1 << 30)
            crc = crc32(crc, base.advanced(by: done).assumingMemoryBound(to: Bytef.self), uInt(n))
            done += n
        }
        record.crc = UInt32(truncatingIfNeeded: crc)
        record.written += piece.count
        current = record
        try output.write(piece)
    }

    mutating func end() throws {
        guard let record = current else { return }
        var descriptor = ZipBytes()
        descriptor.u32(0x0807_4b50)
        descriptor.u32(record.crc)
        if record.size >= ZipStream.limit32 || record.offset >= ZipStream.limit32 {
            descriptor.u64(UInt64(record.written)); descriptor.u64(UInt64(record.written))
        } else {
            descriptor.u32(UInt32(record.written)); descriptor.u32(UInt32(record.written))
        }
        try output.write(descriptor.bytes)
        entries.append((record.name, record.offset, record.written, record.crc))
        current = nil
    }

    /// The central directory and its end records (zip64 ones when needed).
    func finish() throws {
        let start = output.bytesWritten
        var directory = ZipBytes()
        for entry in entries {
            let bigSize = entry.size >= ZipStream.limit32, bigOffset = entry.offset >= ZipStream.limit32
            var extra = ZipBytes()
            if bigSize || bigOffset {
                extra.u16(0x0001)
                extra.u16(UInt16((bigSize ? 16 : 0) + (bigOffset ? 8 : 0)))
                if bigSize { extra.u64(UInt64(entry.size)); extra.u64(UInt64(entry.size)) }
                if bigOffset { extra.u64(UInt64(entry.offset)) }
            }
            directory.u32(0x0201_4b50)
            directory.u16(bigSize || bigOffset ? 45 : 20); directory.u16(bigSize || bigOffset ? 45 : 20)
            directory.u16(0x0808); directory.u16(0)
            directory.u16(0); directory.u16(0x21)
            directory.u32(entry.crc)
            directory.u32(bigSize ? UInt32.max : UInt32(entry.size)); directory.u32(bigSize ? UInt32.max : UInt32(entry.size))
            directory.u16(UInt16(entry.name.count)); directory.u16(UInt16(extra.bytes.count)); directory.u16(0)
            directory.u16(0); directory.u16(0); directory.u32(0)
            directory.u32(bigOffset ? UInt32.max : UInt32(entry.offset))
            directory.bytes += entry.name + extra.bytes
        }
        let size = directory.bytes.count
        let end = start + size
        if start >= ZipStream.limit32 || size >= ZipStream.limit32 || entries.count >= 0xffff {
            directory.u32(0x0606_4b50); directory.u64(44)
            directory.u16(45); directory.u16(45); directory.u32(0); directory.u32(0)
            directory.u64(UInt64(entries.count)); directory.u64(UInt64(entries.count))
            directory.u64(UInt64(size)); directory.u64(UInt64(start))
            directory.u32(0x0706_4b50); directory.u32(0); directory.u64(UInt64(end)); directory.u32(1)
        }
        directory.u32(0x0605_4b50)
        directory.u16(0); directory.u16(0)
        directory.u16(UInt16(min(entries.count, 0xffff))); directory.u16(UInt16(min(entries.count, 0xffff)))
        directory.u32(size >= ZipStream.limit32 ? UInt32.max : UInt32(size))
        directory.u32(start >= ZipStream.limit32 ? UInt32.max : UInt32(start))
        directory.u16(0)
        try output.write(directory.bytes)
    }
}

private struct ZipBytes {
    var bytes: [UInt8] = []
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
}
