import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// HDF5 files as `Checkpoint`s: what `Checkpoint.open` returns for `.h5`/`.weights.json` inputs,
/// and the writer used by `convert` for HDF5 outputs.
extension Checkpoint {
    /// Opens an HDF5 file (or a Keras 3 `.weights.json` index) as a checkpoint.
    public static func openHDF5(_ path: String, name: String, options: OpenOptions = OpenOptions()) throws -> Checkpoint {
        let reader = try HDF5Reader(path: path, options: try hdf5ReadOptions(options, file: name))
        return try Checkpoint(hdf5: reader, name: name)
    }

    /// Opens HDF5 data arriving on a stream by spooling it to an unlinked temporary file.
    public static func openHDF5(_ source: ByteSource, options: OpenOptions = OpenOptions()) throws -> Checkpoint {
        let reader = try HDF5Reader.spooling(source, options: try hdf5ReadOptions(options, file: source.name))
        return try Checkpoint(hdf5: reader, name: source.name)
    }

    static func hdf5ReadOptions(_ options: OpenOptions, file: String) throws(TensorFormatError) -> HDF5ReadOptions {
        var layout: HDF5Layout?
        if let name = options.hdf5Layout {
            guard let known = HDF5Layout(rawValue: name) else {
                throw TensorFormatError(.invalidArgument, "unknown HDF5 layout '\(name)' (one of \(HDF5Layout.allCases.map(\.rawValue).joined(separator: ", ")))", file: file)
            }
            layout = known
        }
        return HDF5ReadOptions(allowUnsafe: options.allowUnsafeHDF5, layout: layout)
    }

    /// The reader's tensors as entries in file order; `details` carries what `inspect` shows of the
    /// HDF5 side (layout, groups, each dataset's storage, skipped datasets).
    convenience init(hdf5 reader: HDF5Reader, name: String) throws {
        var entries: [TensorEntry] = []
        var infos: [[TensorInfo]] = Array(repeating: [], count: reader.files.count)
        var offset = 0
        for tensor in reader.tensors {
            let info = TensorInfo(name: tensor.name, dtype: tensor.dtype, shape: tensor.shape,
                                  dataOffsets: offset..<(offset + tensor.byteCount))
            let fileIndex = reader.files.firstIndex(of: tensor.file) ?? 0
            entries.append(TensorEntry(info: info, fileIndex: fileIndex, fileOffset: offset))
            infos[fileIndex].append(info)
            offset += tensor.byteCount
        }
        let metadata = reader.metadata.isEmpty && !reader.hasEmptyMetadata ? nil : Metadata(reader.metadata)
        let files = reader.files.enumerated().map { index, path in
            CheckpointFile(path: reader.files.count == 1 ? name : path, size: Sys.fileStatus(path: path).map { Int($0.st_size) },
                           header: SafetensorsHeader(tensors: infos[index], metadata: metadata, headerLength: 0))
        }
        var details: [(String, String)] = [
            ("hdf5 layout", reader.layout.rawValue + (reader.files.count > 1 ? " (sharded, \(reader.files.count) files)" : "")),
            ("hdf5 groups", String(reader.groupCount)),
            ("hdf5 datasets", String(reader.tensors.count + reader.skipped.count)),
        ]
        for tensor in reader.tensors {
            details.append(("hdf5 dataset \(tensor.path)", HDF5Checkpoint.describeStorage(tensor)))
        }
        for skipped in reader.skipped {
            details.append(("hdf5 skipped \(skipped.path)", skipped.reason))
        }
        try self.init(name: name, format: .hdf5, files: files, entries: entries, metadata: metadata,
                      configJSON: try Checkpoint.configFromMetadata(metadata, file: name), details: details,
                      provider: HDF5Provider(reader: reader))
    }
}

enum HDF5Checkpoint {
    /// `IEEE float32 LE, chunked [4, 8], shuffle+deflate(6), 1234 bytes stored`.
    static func describeStorage(_ tensor: HDF5Tensor) -> String {
        var text = "\(tensor.typeDescription), \(tensor.storage)"
        if let chunks = tensor.chunks { text += " \(chunks)" }
        if !tensor.filters.isEmpty {
            text += ", " + tensor.filters.map { filter in
                let name = filterNames[filter.id] ?? (filter.name.isEmpty ? "filter \(filter.id)" : filter.name)
                return filter.parameters.isEmpty || filter.id == 2 ? name : "\(name)(\(filter.parameters.map(String.init).joined(separator: ",")))"
            }.joined(separator: "+")
        }
        return text + ", \(tensor.storedBytes) bytes stored"
    }

    static let filterNames: [Int: String] = [1: "deflate", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset", 32001: "blosc", 32004: "lz4", 32008: "bitshuffle", 32015: "zstd"]
}

/// Reads HDF5 tensors one dataset at a time, then hands the bytes out in chunks.
final class HDF5Provider: TensorDataProvider {
    let reader: HDF5Reader
    private let tensorsByName: [ByteKey: HDF5Tensor]

    init(reader: HDF5Reader) {
        self.reader = reader
        tensorsByName = Dictionary(reader.tensors.map { (ByteKey($0.name), $0) }, uniquingKeysWith: { first, _ in first })
    }

    var isSequential: Bool { false }

    /// The last tensor read: range reads of one tensor (diff, verify) load its dataset once.
    private var cached: (name: String, bytes: [UInt8])?

    private func bytes(of entry: TensorEntry) throws -> [UInt8] {
        if let cached, cached.name == entry.name { return cached.bytes }
        guard let tensor = tensorsByName[ByteKey(entry.name)] else {
            throw TensorFormatError(.notFound, "no such dataset", tensor: entry.name)
        }
        cached = nil
        let bytes = try reader.read(tensor)
        cached = (entry.name, bytes)
        return bytes
    }

    func read(_ entry: TensorEntry, chunkBytes: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let bytes = try bytes(of: entry)
        cached = nil
        try bytes.withUnsafeBytes { try handOut($0, chunkBytes: chunkBytes, body) }
    }

    func read(_ entry: TensorEntry, range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let bytes = try bytes(of: entry)
        guard range.lowerBound >= 0, range.upperBound <= bytes.count else {
            throw TensorFormatError(.invalidArgument, "byte range \(range) outside the tensor's \(bytes.count) bytes", tensor: entry.name)
        }
        try bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    func finish() throws {}
}

/// HDF5 output through `OutputFile`, like every other output: a regular target is built under the
/// output's temporary name beside it, then fsynced, renamed and the directory fsynced; standard output,
/// a FIFO or a device is built in an anonymous `SpoolFile` (HDF5 writes by seeking) and copied into the
/// stream, so the node itself is never replaced. A failure or signal leaves no partial file.
public enum HDF5Output {
    /// Writes `tensors` (planned first, like `SafetensorsWriter`), asking `produce` for each one's bytes
    /// in order; `produce` calls the sink with consecutive pieces. Memory: one tensor at a time.
    public static func write(to path: String, force: Bool = false, layout: HDF5WriteLayout = .dmsurgery,
                             compression: OutputCompression? = nil,
                             tensors: [(name: String, dtype: DType, shape: [Int])], metadata: Metadata?,
                             produce: (TensorInfo, (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        let output = try OutputFile(path: path, force: force)
        defer { output.discard() }
        let spool = output.temporaryPath == nil ? try SpoolFile.create() : nil
        defer { spool?.close() }
        func create(_ file: String) throws(TensorFormatError) -> HDF5Writer {
            try HDF5Writer(path: file, layout: layout, compression: compression,
                           metadata: metadata?.entries.map { ($0.key, $0.value) } ?? [], label: path,
                           emptyMetadata: metadata != nil && metadata!.entries.isEmpty)
        }
        let writer = try output.temporaryPath.map(create) ?? spool!.withName(create)
        var offset = 0
        var buffer: [UInt8] = []
        for tensor in tensors {
            guard let elements = MemoryBudget.product(tensor.shape), let count = tensor.dtype.byteCount(elements: elements) else {
                throw TensorFormatError(.misalignedBits, "not a whole number of bytes", file: path, tensor: tensor.name)
            }
            let info = TensorInfo(name: tensor.name, dtype: tensor.dtype, shape: tensor.shape, dataOffsets: offset..<(offset + count))
            offset += count
            // libhdf5 takes a dataset whole: the buffer is checked before it is sized by the input.
            try MemoryBudget.check(count, for: "tensor '\(printable(tensor.name))' (an HDF5 dataset is written whole)",
                                   option: "its size, or write safetensors, which streams", file: path)
            buffer.removeAll(keepingCapacity: true)
            buffer.reserveCapacity(count)
            try produce(info) { piece in
                guard buffer.count + piece.count <= count else {
                    throw TensorFormatError(.sizeMismatch, "more bytes supplied than the tensor holds", file: path, tensor: tensor.name)
                }
                buffer.append(contentsOf: piece)
            }
            guard buffer.count == count else {
                throw TensorFormatError(.sizeMismatch, "\(buffer.count) bytes supplied, the tensor holds \(count)", file: path, tensor: tensor.name)
            }
            try buffer.withUnsafeBytes { raw in
                try writer.write(name: tensor.name, dtype: tensor.dtype, shape: tensor.shape, bytes: raw)
            }
        }
        try writer.close()
        if let spool { try spool.copy(to: output) }
        try output.commit()
    }

    /// Copies a whole checkpoint (its order, names and metadata) into an HDF5 file.
    public static func write(_ checkpoint: Checkpoint, to path: String, force: Bool = false,
                             layout: HDF5WriteLayout = .dmsurgery, compression: OutputCompression? = nil) throws {
        try write(to: path, force: force, layout: layout, compression: compression,
                  tensors: checkpoint.entries.map { ($0.name, $0.dtype, $0.shape) }, metadata: checkpoint.metadata) { info, sink in
            try checkpoint.read(checkpoint.entry(named: info.name)!, sink)
        }
    }
}
