#if canImport(Glibc)
import Glibc
#endif

/// GGUF files as `Checkpoint`s: plain tensors (F32, F16, BF16, F64, integers) read as their own dtype,
/// block-quantized ones dequantized to F32 as they are read, a tensor stored as rows of 256 with a
/// `comfy.gguf.orig_shape.*` key given back its original shape.
extension Checkpoint {
    public static func openGGUF(_ path: String, name: String, descriptor: Int32? = nil) throws -> Checkpoint {
        let map = try MappedFile(path: path, descriptor: descriptor)
        do {
            let header = try GGUFHeader.parse(map.bytes)
            return try Checkpoint(gguf: header, map: map, name: name)
        } catch let error as TensorFormatError {
            throw error.inFile(name)
        }
    }

    /// True when the first bytes are the GGUF magic.
    public static func hasGGUFMagic<C: Collection>(_ prefix: C) -> Bool where C.Element == UInt8 {
        Array(prefix.prefix(4)) == GGUFHeader.magic
    }

    convenience init(gguf header: GGUFHeader, map: MappedFile, name: String) throws {
        var entries: [TensorEntry] = []
        var infos: [TensorInfo] = []
        var stored: [ByteKey: GGUFTensorInfo] = [:]
        var details: [(String, String)] = [("gguf version", String(header.version)), ("gguf alignment", String(header.alignment))]
        var tensorDetails: [(String, String)] = []
        var typeCounts: [GGMLType: Int] = [:]
        var storedBytes = 0
        var virtualOffset = 0
        for tensor in header.tensors.sorted(by: { $0.offset < $1.offset }) {
            let original = try header.originalShape(of: tensor, in: map.bytes)
            let shape = original ?? tensor.shape
            let dtype = tensor.type.readDType
            guard let decoded = dtype.byteCount(elements: tensor.elementCount) else {
                throw TensorFormatError(.sizeOverflow, "decoded size overflows", file: name, tensor: tensor.name)
            }
            let (end, overflow) = virtualOffset.addingReportingOverflow(decoded)
            guard !overflow else { throw TensorFormatError(.sizeOverflow, "decoded sizes overflow", file: name, tensor: tensor.name) }
            let info = TensorInfo(name: tensor.name, dtype: dtype, shape: shape, dataOffsets: virtualOffset..<end)
            virtualOffset = end
            infos.append(info)
            entries.append(TensorEntry(info: info, fileIndex: 0, fileOffset: header.dataStart + tensor.offset))
            stored[ByteKey(tensor.name)] = tensor
            typeCounts[tensor.type, default: 0] += 1
            storedBytes += tensor.byteCount
            tensorDetails.append(("gguf tensor \(tensor.name)", "\(tensor.type.name) \(tensor.shape)"
                                  + (original.map { " (original \($0))" } ?? "") + ", \(tensor.byteCount) bytes"))
        }
        let elements = entries.reduce(0) { $0 + $1.elementCount }
        details.append(("gguf tensor types", typeCounts.sorted { $0.value > $1.value }.map { "\($0.key.name) \($0.value)" }.joined(separator: ", ")))
        if elements > 0 {
            details.append(("gguf bits per weight", String(format2(Double(storedBytes) * 8 / Double(elements)))))
        }
        var metadata = Metadata()
        for (key, value) in header.keyValues where !key.utf8.starts(with: GGUFHeader.originalShapePrefix.utf8) {
            if let text = value.stringValue, !key.hasPrefix("general.") {
                metadata[key] = text
            } else {
                details.append(("gguf kv \(key)", "\(value.type.name) \(value.text)"))
            }
        }
        details += tensorDetails
        let file = CheckpointFile(path: name, size: map.size, header: SafetensorsHeader(tensors: infos, metadata: metadata, headerLength: header.dataStart - 8))
        try self.init(name: name, format: .gguf, files: [file], entries: entries, metadata: metadata.isEmpty ? nil : metadata,
                      configJSON: try Checkpoint.configFromMetadata(metadata, file: name), details: details,
                      provider: GGUFProvider(map: map, stored: stored))
    }
}

/// Two decimals, without Foundation's locale-dependent formatting.
private func format2(_ value: Double) -> String {
    let hundredths = Int((value * 100).rounded())
    let fraction = hundredths % 100
    return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
}

/// Tensor bytes of a mapped GGUF file; quantized tensors are decoded block by block into a buffer
/// of at most one chunk, so memory stays bounded however large the tensor.
final class GGUFProvider: TensorDataProvider {
    let map: MappedFile
    let stored: [ByteKey: GGUFTensorInfo]

    init(map: MappedFile, stored: [ByteKey: GGUFTensorInfo]) {
        self.map = map
        self.stored = stored
    }

    var isSequential: Bool { false }

    func read(_ entry: TensorEntry, chunkBytes: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let tensor = stored[ByteKey(entry.name)], tensor.type.isQuantized else {
            return try MappedProvider(maps: [map]).read(entry, chunkBytes: chunkBytes, body)
        }
        let blocksPerChunk = max(1, chunkBytes / 4 / tensor.type.blockSize)
        try decode(entry, tensor, blocks: 0..<(tensor.byteCount / tensor.type.typeSize), perChunk: blocksPerChunk) { floats, _ in
            try body(UnsafeRawBufferPointer(floats))
        }
    }

    func read(_ entry: TensorEntry, range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let tensor = stored[ByteKey(entry.name)], tensor.type.isQuantized else {
            return try MappedProvider(maps: [map]).read(entry, range: range, body)
        }
        let blockBytes = 4 * tensor.type.blockSize
        let blocks = (range.lowerBound / blockBytes)..<((range.upperBound + blockBytes - 1) / blockBytes)
        try decode(entry, tensor, blocks: blocks, perChunk: max(1, blocks.count)) { floats, first in
            let skip = range.lowerBound - first * blockBytes
            try body(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(floats)[skip..<(skip + range.count)]))
        }
    }

    /// Decodes `blocks` in runs of `perChunk`, handing each run and its first block index to `body`.
    private func decode(_ entry: TensorEntry, _ tensor: GGUFTensorInfo, blocks: Range<Int>, perChunk: Int,
                        _ body: (UnsafeBufferPointer<Float>, Int) throws -> Void) throws {
        let type = tensor.type
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: min(perChunk, max(blocks.count, 1)) * type.blockSize)
        defer { buffer.deallocate() }
        var first = blocks.lowerBound
        while first < blocks.upperBound {
            let count = min(perChunk, blocks.upperBound - first)
            let bytes = (entry.fileOffset + first * type.typeSize)..<(entry.fileOffset + (first + count) * type.typeSize)
            GGMLQuants.dequantize(type, map.bytes(bytes).baseAddress!, blocks: count, into: buffer.baseAddress!)
            map.release(bytes)
            try body(UnsafeBufferPointer(rebasing: buffer[0..<(count * type.blockSize)]), first)
            first += count
        }
    }

    func finish() throws {}
}

extension Checkpoint {
    /// The first four bytes of a file (fewer when it is shorter or unreadable).
    static func fileSignatureBytes(_ path: String) -> [UInt8] {
        guard let fd = try? Sys.openRegularFile(path) else { return [] }
        defer { Sys.close(fd) }
        return signatureBytes(descriptor: fd, path: path)
    }

    static func signatureBytes(descriptor fd: Int32, path: String) -> [UInt8] {
        var prefix = [UInt8](repeating: 0, count: 4)
        let count = (try? prefix.withUnsafeMutableBytes { (raw) throws(TensorFormatError) in try Sys.pread(fd, into: raw, offset: 0, path) }) ?? 0
        return Array(prefix.prefix(count))
    }
}
