#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// How a checkpoint is stored on disk.
public enum CheckpointFormat: String, Sendable, Codable {
    case safetensors
    case shardedSafetensors = "safetensors-sharded"
    case diffusersFolder = "diffusers-folder"
    case diffusersPipeline = "diffusers-pipeline"
    case hdf5
    /// torch.save's zip or legacy pickle container, read without running it (formats/pickle.md).
    case pytorch
    case gguf
    /// An ONNX model (formats/onnx-read.md): initializers mapped back to the exported checkpoint's names.
    case onnx
}

/// One tensor of a checkpoint and where its bytes are.
public struct TensorEntry: Sendable, Hashable {
    public var info: TensorInfo
    /// Which of the checkpoint's files holds it.
    public var fileIndex: Int
    /// Absolute offset of its first byte in that file.
    public var fileOffset: Int

    public var name: String { info.name }
    public var dtype: DType { info.dtype }
    public var shape: [Int] { info.shape }
    public var byteCount: Int { info.byteCount }
    public var elementCount: Int { info.elementCount }
}

/// A file that makes up (part of) a checkpoint.
public struct CheckpointFile: Sendable {
    public var path: String
    /// nil for a stream whose length is unknown until its end.
    public var size: Int?
    public var header: SafetensorsHeader
}

/// Access to tensor bytes, whatever holds them (a map, a stream, an HDF5 dataset).
public protocol TensorDataProvider: AnyObject {
    /// True when tensors can only be read once, in storage order.
    var isSequential: Bool { get }
    /// Calls `body` with consecutive pieces of the tensor's bytes, each a multiple of `chunkBytes`
    /// except the last. Pieces are only valid during the call.
    func read(_ entry: TensorEntry, chunkBytes: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws
    /// Calls `body` with bytes `range` (relative to the tensor's start). Random-access providers only.
    func read(_ entry: TensorEntry, range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws
    /// Checks what can only be checked at the end (a stream's trailing bytes).
    func finish() throws
}

/// A checkpoint opened for reading: one safetensors file, a sharded set, a diffusers folder or a stream.
///
/// Headers are read and validated on open; tensor data is read on demand. The default chunk size keeps
/// memory bounded however large a tensor is.
public final class Checkpoint {
    /// Bytes handed to a tensor body at a time: a multiple of 8 and of 3 (F6 packs 4 values in 3 bytes).
    public static let defaultChunkBytes = 6 << 20

    /// The path as the user gave it (`-` for standard input).
    public let name: String
    public let format: CheckpointFormat
    public let files: [CheckpointFile]
    /// Every tensor, in storage order (file by file, then by offset).
    public let entries: [TensorEntry]
    /// Metadata of the file(s); for shards, the union in shard order.
    public let metadata: Metadata?
    /// The diffusers config JSON, from config.json beside the weights or the `dmsurgery.config` key.
    public let configJSON: String?
    /// Extra facts a format reports for `inspect` (an HDF5 layout, a zstd frame), in order.
    public let details: [(String, String)]
    /// Tensor names in the order of the index file's weight_map, for sharded input.
    public var indexOrder: [String]?
    /// An ONNX model's graph (opsets, operators, inputs and outputs), for `inspect`.
    public internal(set) var onnxGraph: ONNXGraphSummary?
    let provider: TensorDataProvider
    private let indexByName: [ByteKey: Int]

    public init(name: String, format: CheckpointFormat, files: [CheckpointFile], entries: [TensorEntry],
                metadata: Metadata?, configJSON: String?, details: [(String, String)] = [],
                provider: TensorDataProvider) throws(TensorFormatError) {
        self.name = name
        self.format = format
        self.files = files
        self.entries = entries
        self.metadata = metadata
        self.configJSON = configJSON
        self.details = details
        self.provider = provider
        var index: [ByteKey: Int] = [:]
        index.reserveCapacity(entries.count)
        for (i, entry) in entries.enumerated() {
            guard index.updateValue(i, forKey: ByteKey(entry.name)) == nil else {
                throw TensorFormatError(.duplicateKey, "tensor name appears twice", file: name, tensor: entry.name)
            }
        }
        self.indexByName = index
    }

    public var isSequential: Bool { provider.isSequential }

    public func entry(named name: String) -> TensorEntry? {
        indexByName[ByteKey(name)].map { entries[$0] }
    }

    /// Total number of elements, the figure people call parameter count.
    public var parameterCount: Int { entries.reduce(0) { $0 + $1.elementCount } }
    public var byteCount: Int { entries.reduce(0) { $0 + $1.byteCount } }

    /// Streams a tensor's bytes in chunks (see `TensorDataProvider.read`).
    public func read(_ entry: TensorEntry, chunkBytes: Int = Checkpoint.defaultChunkBytes,
                     _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let aligned = max(entry.dtype.elementGroupBytes, chunkBytes / entry.dtype.elementGroupBytes * entry.dtype.elementGroupBytes)
        do {
            try provider.read(entry, chunkBytes: aligned, body)
        } catch let error as TensorFormatError {
            var located = error.inFile(name)
            if located.tensor == nil { located.tensor = entry.name }
            throw located
        }
    }

    /// Bytes `range` of a tensor (relative to its start); needs random access (see `withRandomAccess`).
    public func read(_ entry: TensorEntry, range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        do {
            try provider.read(entry, range: range, body)
        } catch let error as TensorFormatError {
            var located = error.inFile(name)
            if located.tensor == nil { located.tensor = entry.name }
            throw located
        }
    }

    /// A whole tensor's bytes.
    public func bytes(of entry: TensorEntry) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(entry.byteCount)
        try read(entry, chunkBytes: max(entry.byteCount, 1)) { out.append(contentsOf: $0) }
        return out
    }

    /// A whole tensor widened to float32 (what the graph engine computes in).
    public func floats(of entry: TensorEntry) throws -> [Float] {
        let bytes = try bytes(of: entry)
        let count = ElementCodec.scalarCount(entry.dtype, elements: entry.elementCount)
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            bytes.withUnsafeBytes { ElementCodec.decodeFloats(entry.dtype, $0, elements: entry.elementCount, into: buffer) }
            initialized = count
        }
    }

    public func floats(named name: String) throws -> [Float] {
        guard let entry = entry(named: name) else {
            throw TensorFormatError(.notFound, "no tensor of that name", file: self.name, tensor: name)
        }
        return try floats(of: entry)
    }

    /// This checkpoint with tensors readable in any order: a stream not yet read is spooled to an
    /// unlinked temporary file (bounded memory, nothing left behind); files are returned as they are.
    public func withRandomAccess() throws -> Checkpoint {
        guard let stream = provider as? StreamProvider else { return self }
        guard stream.position == 0 else {
            throw TensorFormatError(.unsupported, "stream already partly read", file: name)
        }
        let spooled = try Checkpoint.spool(stream.source)
        defer { Sys.close(spooled.fd) }
        let map = try MappedFile(path: spooled.path, descriptor: spooled.fd)
        if map.size < stream.dataLength {
            throw TensorFormatError(.truncated, "input ended \(stream.dataLength - map.size) bytes before the end of the data", file: name,
                                    tensor: entries.last(where: { $0.info.dataOffsets.upperBound > map.size })?.name)
        }
        if map.size > stream.dataLength {
            throw TensorFormatError(.trailingBytes, "\(map.size - stream.dataLength) bytes follow the last tensor's data (the buffer must end the stream)", file: name)
        }
        let remapped = entries.map { TensorEntry(info: $0.info, fileIndex: 0, fileOffset: $0.info.dataOffsets.lowerBound) }
        var spooledFiles = files
        spooledFiles[0].size = files[0].header.dataStart + map.size
        return try Checkpoint(name: name, format: format, files: spooledFiles, entries: remapped, metadata: metadata,
                              configJSON: configJSON, details: details, provider: MappedProvider(maps: [map]))
    }

    /// Whether every tensor lies in a memory-mapped file (a file or folder opened with random access,
    /// or a spooled stream): its bytes can then be read again at any time without a copy held in memory
    /// and without an error (`withMappedBytes`).
    public var isMapped: Bool { provider is MappedProvider }

    /// Calls `body` with the bytes of elements `elements` of `entry`, a tensor whose elements are whole
    /// bytes (`DType.byteCount(elements:)` of one element), straight from the mapped file; the pages
    /// are then dropped from this process's resident set (the page cache keeps them). For frozen models
    /// that read their weights at each use. Only for a checkpoint that `isMapped`.
    public func withMappedBytes(of entry: TensorEntry, elements: Range<Int>, _ body: (UnsafeRawBufferPointer) -> Void) {
        guard let mapped = provider as? MappedProvider, let width = entry.dtype.byteCount(elements: 1),
              elements.lowerBound >= 0, elements.upperBound <= entry.elementCount else {
            preconditionFailure("\(name): \(entry.name) elements \(elements) are not mapped whole bytes")
        }
        let map = mapped.maps[entry.fileIndex]
        let range = (entry.fileOffset + elements.lowerBound * width)..<(entry.fileOffset + elements.upperBound * width)
        body(map.bytes(range))
        map.release(range)
    }

    /// Checks a stream's end once every tensor has been read (no-op for files).
    public func finish() throws {
        do { try provider.finish() } catch let error as TensorFormatError { throw error.inFile(name) }
    }
}

// MARK: - Providers

/// Tensors in memory-mapped files: random access, pages released after each chunk.
final class MappedProvider: TensorDataProvider {
    let maps: [MappedFile]
    init(maps: [MappedFile]) { self.maps = maps }

    var isSequential: Bool { false }

    func read(_ entry: TensorEntry, chunkBytes: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let map = maps[entry.fileIndex]
        let range = entry.fileOffset..<(entry.fileOffset + entry.byteCount)
        if range.isEmpty { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        var start = range.lowerBound
        while start < range.upperBound {
            let end = min(range.upperBound, start + chunkBytes)
            if end < range.upperBound { map.willRead(end..<min(range.upperBound, end + chunkBytes)) }
            try body(map.bytes(start..<end))
            map.release(start..<end)
            start = end
        }
    }

    func read(_ entry: TensorEntry, range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let map = maps[entry.fileIndex]
        let absolute = (entry.fileOffset + range.lowerBound)..<(entry.fileOffset + range.upperBound)
        try body(map.bytes(absolute))
        map.release(absolute)
    }

    func finish() throws {}
}

/// Tensors arriving on a stream, read once in storage order through one reusable buffer.
final class StreamProvider: TensorDataProvider {
    let source: ByteSource
    let dataLength: Int
    private(set) var position = 0
    private var buffer: UnsafeMutableRawBufferPointer

    init(source: ByteSource, dataLength: Int) {
        self.source = source
        self.dataLength = dataLength
        self.buffer = .allocate(byteCount: 1, alignment: 64)
    }

    deinit { buffer.deallocate() }

    var isSequential: Bool { true }

    func read(_ entry: TensorEntry, range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        throw TensorFormatError(.unsupported, "a stream has no random access; spool it first", tensor: entry.name)
    }

    func read(_ entry: TensorEntry, chunkBytes: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard entry.info.dataOffsets.lowerBound >= position else {
            throw TensorFormatError(.unsupported, "a stream can only be read in storage order", tensor: entry.name)
        }
        try skip(to: entry.info.dataOffsets.lowerBound, tensor: entry.name)
        if buffer.count < min(chunkBytes, max(entry.byteCount, 1)) {
            buffer.deallocate()
            buffer = .allocate(byteCount: min(chunkBytes, max(entry.byteCount, 1)), alignment: 64)
        }
        if entry.byteCount == 0 { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        var remaining = entry.byteCount
        while remaining > 0 {
            let want = min(remaining, buffer.count)
            let got = try source.readFully(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
            position += got
            guard got == want else {
                throw TensorFormatError(.truncated, "input ended \(dataLength - position) bytes before the end of the data", tensor: entry.name)
            }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<want]))
            remaining -= want
        }
    }

    /// Reads and discards bytes up to `target` (tensors the caller did not ask for).
    private func skip(to target: Int, tensor: String?) throws {
        var scratch = [UInt8](repeating: 0, count: 1 << 16)
        while position < target {
            let want = min(scratch.count, target - position)
            let got = try scratch.withUnsafeMutableBytes { (raw) throws(TensorFormatError) in
                try source.readFully(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<want]))
            }
            position += got
            guard got == want else {
                throw TensorFormatError(.truncated, "input ended \(dataLength - position) bytes before the end of the data", tensor: tensor)
            }
        }
    }

    /// Skips whatever was not read, then requires end of input.
    func finish() throws {
        try skip(to: dataLength, tensor: nil)
        var scratch = [UInt8](repeating: 0, count: 16)
        let extra = try scratch.withUnsafeMutableBytes { (raw) throws(TensorFormatError) in try source.read(into: raw) }
        if extra > 0 {
            throw TensorFormatError(.trailingBytes, "bytes follow the last tensor's data (the buffer must end the stream)")
        }
    }
}

/// Hands a tensor already in memory (decoded, dequantized) to a reader in pieces of at most `chunkBytes`,
/// as mapped tensors are handed out; an empty tensor is one empty piece.
func handOut(_ raw: UnsafeRawBufferPointer, chunkBytes: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
    if raw.isEmpty { return try body(raw) }
    var start = 0
    while start < raw.count {
        let end = min(raw.count, start + chunkBytes)
        try body(UnsafeRawBufferPointer(rebasing: raw[start..<end]))
        start = end
    }
}
