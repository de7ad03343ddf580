import CHDF5
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads tensors from an HDF5 file (or a sharded Keras 3 checkpoint) through libhdf5.
///
/// Opening scans the whole file once: every link is checked against Keras' safety rules and every
/// dataset's type, shape and storage is recorded; `read` then loads one dataset at a time, so memory
/// stays at about one tensor.
public final class HDF5Reader {
    /// The path the reader was opened with (the index for a sharded checkpoint, `-` for a pipe).
    public let path: String
    public let layout: HDF5Layout
    /// The `.h5` files, in read order (one unless sharded).
    public let files: [String]
    public private(set) var tensors: [HDF5Tensor] = []
    /// Root string attributes (all but `dmsurgery.layout`): the checkpoint's metadata.
    public private(set) var metadata: [(key: String, value: String)] = []
    /// Whether the file says its metadata is present though empty (`{}`, dmsurgery layout).
    public private(set) var hasEmptyMetadata = false
    public private(set) var skipped: [HDF5SkippedDataset] = []
    public private(set) var groupCount = 0

    private let options: HDF5ReadOptions
    /// The one file kept open; shards are opened one at a time.
    private var openFile: (path: String, handle: HDF5Handle)?
    /// The root attribute naming the dmsurgery layout, and its value.
    public static let layoutAttribute = "dmsurgery.layout"
    public static let layoutValue = "dmsurgery-hdf5/1"
    /// Root attribute (dmsurgery layout) marking an empty but present `__metadata__` (`{}`), which has
    /// no attribute of its own; without it `{}` would come back as no metadata at all.
    public static let emptyMetadataAttribute = "dmsurgery.empty-metadata"

    /// True when `prefix` starts with the HDF5 signature (`\x89HDF\r\n\x1a\n`).
    public static func hasSignature<C: Collection>(_ prefix: C) -> Bool where C.Element == UInt8 {
        prefix.starts(with: [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A])
    }

    /// True for a sharded Keras 3 index (`*.weights.json`).
    public static func isShardedIndex(_ path: String) -> Bool { path.hasSuffix(".weights.json") }

    /// Opens an `.h5` file, or a Keras 3 `.weights.json` index and its shards.
    public convenience init(path: String, options: HDF5ReadOptions = HDF5ReadOptions()) throws(TensorFormatError) {
        try self.init(path: path, label: path, options: options)
    }

    private init(path: String, label: String, options: HDF5ReadOptions) throws(TensorFormatError) {
        self.path = label
        self.options = options
        if HDF5Reader.isShardedIndex(path) {
            files = try HDF5Reader.shards(index: path)
            layout = options.layout ?? .keras3
            for shard in files {
                let scan = try HDF5Library.guarded(file: shard) { () throws(TensorFormatError) -> HDF5FileScan in
                    let file = try HDF5Reader.openHDF5(shard, label: shard)
                    return try HDF5FileScan(file: file.id, label: shard, layout: options.layout ?? .keras3, allowUnsafe: options.allowUnsafe)
                }
                tensors += scan.tensors
                skipped += scan.skipped
                groupCount += scan.groupCount
                if metadata.isEmpty { metadata = scan.metadata }
            }
        } else {
            files = [path]
            let (scan, file) = try HDF5Library.guarded(file: label) { () throws(TensorFormatError) -> (HDF5FileScan, HDF5Handle) in
                let file = try HDF5Reader.openHDF5(path, label: label)
                let layout: HDF5Layout
                if let forced = options.layout { layout = forced } else { layout = try HDF5FileScan.recognise(file: file.id, label: label) }
                return (try HDF5FileScan(file: file.id, label: label, layout: layout, allowUnsafe: options.allowUnsafe), file)
            }
            layout = scan.layout
            tensors = scan.tensors
            metadata = scan.metadata
            hasEmptyMetadata = scan.hasEmptyMetadata
            skipped = scan.skipped
            groupCount = scan.groupCount
            openFile = (path, file)
        }
        var seen = Set<ByteKey>()
        for tensor in tensors where !seen.insert(ByteKey(tensor.name)).inserted {
            throw TensorFormatError(.nameCollision, "two datasets map to the same tensor name", file: label, tensor: tensor.name)
        }
    }

    /// Reads a non-seekable input (a pipe, a decompressor) through a `SpoolFile`, since HDF5 needs to
    /// seek: the spool has a name only while libhdf5 opens it, and libhdf5 keeps it open.
    /// `source.name` labels errors (`-` for standard input).
    public static func spooling(_ source: ByteSource, options: HDF5ReadOptions = HDF5ReadOptions()) throws(TensorFormatError) -> HDF5Reader {
        let spool = try SpoolFile.filled(from: source)
        defer { spool.close() }
        return try spool.withName { (name) throws(TensorFormatError) in
            try HDF5Reader(path: name, label: source.name, options: options)
        }
    }

    /// The tensor's raw little-endian bytes (safetensors layout), read from its dataset.
    public func read(_ tensor: HDF5Tensor) throws(TensorFormatError) -> [UInt8] {
        try HDF5Library.guarded(file: files.count == 1 ? path : tensor.file) { () throws(TensorFormatError) -> [UInt8] in
            // A single file (perhaps an unlinked spool) stays open; shards are opened one at a time.
            let file: HDF5Handle
            if files.count == 1, let open = openFile { file = open.handle } else { file = try handle(for: tensor.file) }
            let label = tensor.file
            let dataset = try HDF5Handle(H5Dopen2(file.id, tensor.path, dms_h5p_default()), .hdf5Unreadable,
                                         "cannot open dataset \(tensor.path)", file: label, tensor: tensor.name)
            let fileType = try HDF5Handle(H5Dget_type(dataset.id), .hdf5Unreadable, "cannot read the type", file: label, tensor: tensor.name)
            let attribute = HDF5Attributes.string(dataset.id, "dtype")
            guard case .tensor(_, let memoryType, _) = try HDF5TypeMapping.classify(fileType.id, dtypeAttribute: attribute, file: label) else {
                throw TensorFormatError(.hdf5UnsupportedType, "the dataset changed type", file: label, tensor: tensor.name)
            }
            guard tensor.byteCount > 0 else { return [] }
            try MemoryBudget.check(tensor.byteCount, for: "dataset \(tensor.path)", option: "the input (each tensor is read whole)",
                                   file: label)
            // The zstd filter inflates no chunk beyond the size the dataset declares for it (the rule
            // that keeps a 2 GiB frame in a 1 MiB chunk from allocating 2 GiB).
            let chunkBytes = tensor.chunks.flatMap { MemoryBudget.product($0 + [H5Tget_size(fileType.id)]) }
            HDF5ZstdFilterLimit.chunkBytes = chunkBytes ?? tensor.byteCount
            defer { HDF5ZstdFilterLimit.chunkBytes = nil }
            var status: herr_t = -1
            // H5Dread fills every byte of the selection (or fails, and the array is dropped): no zeroing pass.
            let bytes = [UInt8](unsafeUninitializedCapacity: tensor.byteCount) { buffer, initialized in
                status = H5Dread(dataset.id, memoryType.id, dms_h5s_all(), dms_h5s_all(), dms_h5p_default(), buffer.baseAddress)
                initialized = tensor.byteCount
            }
            guard status >= 0 else {
                throw HDF5Library.failure(.hdf5Unreadable, "cannot read dataset \(tensor.path)", file: label, tensor: tensor.name)
            }
            return bytes
        }
    }

    /// The tensor named `name`, if any.
    public func tensor(named name: String) -> HDF5Tensor? { tensors.first { $0.name == name } }

    private func handle(for file: String) throws(TensorFormatError) -> HDF5Handle {
        if let openFile, openFile.path == file { return openFile.handle }
        openFile = nil
        let handle = try HDF5Reader.openHDF5(file, label: file)
        openFile = (file, handle)
        return handle
    }

    /// H5Fopen read-only, with HDF5's reason in the error. Called under the lock.
    static func openHDF5(_ path: String, label: String) throws(TensorFormatError) -> HDF5Handle {
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw TensorFormatError(.notFound, "cannot open: \(String(cString: strerror(errno)))", file: label)
        }
        // libhdf5 opens the file itself and would block on a FIFO with no writer.
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw TensorFormatError(.io, "not a regular file (\(Sys.kind(status.st_mode))); inputs are read from files", file: label)
        }
        return try HDF5Handle(H5Fopen(path, dms_h5f_acc_rdonly(), dms_h5p_default()), .hdf5Unreadable, "not a readable HDF5 file", file: label)
    }

    /// The shard files of a Keras 3 `.weights.json` index, in order of first mention.
    static func shards(index: String) throws(TensorFormatError) -> [String] {
        let text = try MappedFile.contents(of: index)
        let json: JSONValue
        do {
            json = try text.withUnsafeBytes { (buffer) throws(JSONParseError) -> JSONValue in try JSONParser.parse(buffer) }
        } catch let error as JSONParseError {
            throw TensorFormatError(.invalidIndex, "not a Keras sharded index: \(error.message)", file: index, cause: error)
        } catch {
            throw TensorFormatError(.invalidIndex, "not a Keras sharded index", file: index)
        }
        guard case .object(let map)? = json["weight_map"] else {
            throw TensorFormatError(.invalidIndex, "no weight_map object", file: index)
        }
        let directory = index.contains("/") ? String(index[...index.lastIndex(of: "/")!]) : ""
        var shards: [String] = []
        for member in map {
            let names: [JSONValue]
            if case .array(let list) = member.value { names = list } else { names = [member.value] }
            for name in names {
                guard let file = name.stringValue, !file.contains("/"), file.hasSuffix(".h5") else {
                    throw TensorFormatError(.invalidIndex, "weight_map entry '\(member.key)' does not name a shard beside the index", file: index)
                }
                if !shards.contains(directory + file) { shards.append(directory + file) }
            }
        }
        guard !shards.isEmpty else { throw TensorFormatError(.invalidIndex, "weight_map names no shard", file: index) }
        return shards
    }
}
