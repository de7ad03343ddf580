import CHDF5
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The HDF5 layouts dmsurgery recognises (formats/hdf5.md, "Layouts").
public enum HDF5Layout: String, Sendable, CaseIterable {
    /// dmsurgery's own: one root-level dataset per tensor in the original order, metadata as root
    /// attributes, root attribute `dmsurgery.layout`. Round-trips safetensors exactly.
    case dmsurgery
    /// Keras 2 / legacy `.h5`: `layer_names` and `weight_names` attributes, at the root or under `model_weights`.
    case keras2
    /// Keras 3 `.weights.h5`: `layers/<name>/vars/<i>`, or its sharded form behind a `.weights.json` index.
    case keras3
    /// Any other file: every numeric dataset, named by its path.
    case generic
}

/// One filter of a chunked dataset's pipeline.
public struct HDF5Filter: Sendable, Equatable {
    public var id: Int
    public var name: String
    public var parameters: [UInt32]
}

/// A dataset that reads as a tensor.
public struct HDF5Tensor: Sendable {
    /// The dotted tensor name (`HDF5Names`).
    public var name: String
    public var dtype: DType
    /// Element shape ([] for a scalar).
    public var shape: [Int]
    /// Bytes of the raw little-endian data.
    public var byteCount: Int
    /// The dataset's path in its file.
    public var path: String
    /// The file holding it (differs between shards).
    public var file: String
    /// `contiguous`, `chunked`, `compact` or `virtual`.
    public var storage: String
    public var chunks: [Int]?
    public var filters: [HDF5Filter]
    /// Bytes the dataset occupies in the file.
    public var storedBytes: Int
    /// The HDF5 type as stored, in words (`IEEE float16 LE`, `opaque[2] dtype=bfloat16`).
    public var typeDescription: String
}

/// A dataset that is not read as a tensor, and why.
public struct HDF5SkippedDataset: Sendable {
    public var path: String
    public var reason: String
}

public struct HDF5ReadOptions: Sendable {
    /// Accept what Keras refuses on load: external and soft links, external storage, virtual datasets,
    /// shape bombs.
    public var allowUnsafe: Bool
    /// Read with this layout instead of recognising one.
    public var layout: HDF5Layout?

    public init(allowUnsafe: Bool = false, layout: HDF5Layout? = nil) {
        self.allowUnsafe = allowUnsafe
        self.layout = layout
    }
}

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
        return try HDF5Handle(H5Fopen(path, dms_h5f_acc_rdonly(), dms_h5p_default()), .hdf5Unreadable, "not a readable HDF5 file", file: label)
    }

    /// The shard files of a Keras 3 `.weights.json` index, in order of first mention.
    static func shards(index: String) throws(TensorFormatError) -> [String] {
        guard let data = FileManager.default.contents(atPath: index) else {
            throw TensorFormatError(.io, "cannot read the index", file: index)
        }
        let text = [UInt8](data)
        let json: JSONValue
        do {
            json = try text.withUnsafeBytes { (buffer) throws(JSONParseError) -> JSONValue in try JSONParser.parse(buffer) }
        } catch let error as JSONParseError {
            throw TensorFormatError(.invalidIndex, "not a Keras sharded index: \(error.message)", file: index)
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

/// One pass over one file: layout-specific naming, safety rules, dataset descriptions.
/// Created under the HDF5 lock.
struct HDF5FileScan {
    let layout: HDF5Layout
    var tensors: [HDF5Tensor] = []
    var metadata: [(key: String, value: String)] = []
    var hasEmptyMetadata = false
    var skipped: [HDF5SkippedDataset] = []
    var groupCount = 0

    private let label: String
    private let allowUnsafe: Bool
    /// Every dataset reached, by path components, in traversal order.
    private var datasets: [[String]] = []
    private var describedDatasets: [[String]: HDF5Tensor] = [:]

    /// Which layout a file has, from its root attributes and groups.
    static func recognise(file: hid_t, label: String) throws(TensorFormatError) -> HDF5Layout {
        let root = try HDF5Handle(H5Gopen2(file, "/", dms_h5p_default()), .hdf5Unreadable, "cannot open the root group", file: label)
        if HDF5Attributes.exists(root.id, HDF5Reader.layoutAttribute) { return .dmsurgery }
        if hasLayerNames(root.id) { return .keras2 }
        if H5Lexists(root.id, "model_weights", dms_h5p_default()) > 0, H5Oexists_by_name(root.id, "model_weights", dms_h5p_default()) > 0 {
            let group = H5Gopen2(root.id, "model_weights", dms_h5p_default())
            if group >= 0 {
                defer { H5Gclose(group) }
                if hasLayerNames(group) { return .keras2 }
            }
            _ = HDF5Library.takeErrorMessage()
        }
        for name in ["layers", "vars", "_layer_checkpoint_dependencies"] where H5Lexists(root.id, name, dms_h5p_default()) > 0 {
            var info = H5L_info_t()
            if H5Lget_info(root.id, name, &info, dms_h5p_default()) >= 0, info.type == H5L_TYPE_HARD { return .keras3 }
        }
        _ = HDF5Library.takeErrorMessage()
        return .generic
    }

    private static func hasLayerNames(_ group: hid_t) -> Bool {
        HDF5Attributes.exists(group, "layer_names") || HDF5Attributes.exists(group, "layer_names0")
    }

    init(file: hid_t, label: String, layout: HDF5Layout, allowUnsafe: Bool) throws(TensorFormatError) {
        self.layout = layout
        self.label = label
        self.allowUnsafe = allowUnsafe
        let root = try HDF5Handle(H5Gopen2(file, "/", dms_h5p_default()), .hdf5Unreadable, "cannot open the root group", file: label)
        var visited = Set<HDF5ObjectAddress>()
        try walk(root.id, components: [], visited: &visited)
        hasEmptyMetadata = layout == .dmsurgery && HDF5Attributes.exists(root.id, HDF5Reader.emptyMetadataAttribute)
        for name in HDF5Attributes.names(root.id) where name != HDF5Reader.layoutAttribute && name != HDF5Reader.emptyMetadataAttribute {
            if let value = HDF5Attributes.string(root.id, name) {
                metadata.append((name, value))
            } else if layout == .dmsurgery, let value = HDF5Attributes.utf8Bytes(root.id, name) {
                metadata.append((name, value))
            }
        }
        switch layout {
        case .dmsurgery:
            for components in datasets {
                guard var tensor = describedDatasets[components] else { continue }
                if components.count == 1 {
                    tensor.name = HDF5Names.tensorName(flatLinkName: components[0])
                    tensors.append(tensor)
                } else {
                    skipped.append(HDF5SkippedDataset(path: tensor.path, reason: "not at the root of a dmsurgery layout"))
                }
            }
        case .keras3, .generic:
            tensors = datasets.compactMap { describedDatasets[$0] }
        case .keras2:
            try collectKeras2(root: root.id)
        }
    }

    /// Pre-order traversal in link order, applying the safety rules to every link and dataset.
    /// Deepest group nesting followed: external and soft links (with --allow-unsafe-h5) can nest a
    /// file in itself through names the address check cannot see, and libhdf5 aborts past its own limit.
    static let maximumDepth = 64

    private mutating func walk(_ group: hid_t, components: [String], visited: inout Set<HDF5ObjectAddress>) throws(TensorFormatError) {
        guard components.count < HDF5FileScan.maximumDepth else {
            throw unsafe(.hdf5InvalidLayout, "groups nest deeper than \(HDF5FileScan.maximumDepth) levels at /\(components.joined(separator: "/")) (a link cycle?)")
        }
        var groupInfo = H5G_info_t()
        guard H5Gget_info(group, &groupInfo) >= 0 else {
            throw HDF5Library.failure(.hdf5Unreadable, "cannot list group /\(components.joined(separator: "/"))", file: label)
        }
        let tracked = tracksLinkOrder(group)
        var names: [String] = []
        for n in 0..<groupInfo.nlinks {
            let index = tracked ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME
            let length = H5Lget_name_by_idx(group, ".", index, H5_ITER_INC, n, nil, 0, dms_h5p_default())
            guard length >= 0 else { throw HDF5Library.failure(.hdf5Unreadable, "cannot read a link name", file: label) }
            var buffer = [CChar](repeating: 0, count: Int(length) + 1)
            guard H5Lget_name_by_idx(group, ".", index, H5_ITER_INC, n, &buffer, buffer.count, dms_h5p_default()) >= 0 else {
                throw HDF5Library.failure(.hdf5Unreadable, "cannot read a link name", file: label)
            }
            names.append(HDF5Attributes.string(buffer))
        }
        if !tracked { names.sort(by: HDF5Names.siblingOrder) }
        for name in names {
            let path = components + [name]
            let pathText = "/" + path.joined(separator: "/")
            var link = H5L_info_t()
            guard H5Lget_info(group, name, &link, dms_h5p_default()) >= 0 else {
                throw HDF5Library.failure(.hdf5Unreadable, "cannot read link \(pathText)", file: label)
            }
            switch link.type {
            case H5L_TYPE_HARD: break
            case H5L_TYPE_SOFT:
                guard allowUnsafe else { throw unsafe(.hdf5SoftLink, "soft link \(pathText) (refused as Keras does; --allow-unsafe-h5 follows it)") }
            case H5L_TYPE_EXTERNAL:
                guard allowUnsafe else { throw unsafe(.hdf5ExternalLink, "external link \(pathText) points into another file") }
            default:
                guard allowUnsafe else { throw unsafe(.hdf5ExternalLink, "user-defined link \(pathText)") }
            }
            let object = H5Oopen(group, name, dms_h5p_default())
            guard object >= 0 else {
                if link.type != H5L_TYPE_HARD {
                    _ = HDF5Library.takeErrorMessage()
                    skipped.append(HDF5SkippedDataset(path: pathText, reason: "link does not resolve"))
                    continue
                }
                throw HDF5Library.failure(.hdf5Unreadable, "cannot open \(pathText)", file: label)
            }
            defer { H5Oclose(object) }
            var info = H5O_info_t()
            guard H5Oget_info2(object, &info, UInt32(H5O_INFO_BASIC)) >= 0 else {
                throw HDF5Library.failure(.hdf5Unreadable, "cannot read object \(pathText)", file: label)
            }
            switch info.type {
            case H5O_TYPE_GROUP:
                // Links can make cycles (hard links within the file, external links back into it): each
                // group, identified by its file and address, is entered once.
                guard visited.insert(HDF5ObjectAddress(file: UInt(info.fileno), address: UInt64(info.addr))).inserted else { continue }
                groupCount += 1
                try walk(object, components: path, visited: &visited)
            case H5O_TYPE_DATASET:
                datasets.append(path)
                if let tensor = try describe(dataset: object, path: path) { describedDatasets[path] = tensor }
            default:
                skipped.append(HDF5SkippedDataset(path: pathText, reason: "named datatype"))
            }
        }
    }

    private func tracksLinkOrder(_ group: hid_t) -> Bool {
        let plist = H5Gget_create_plist(group)
        guard plist >= 0 else { return false }
        defer { H5Pclose(plist) }
        var flags: UInt32 = 0
        guard H5Pget_link_creation_order(plist, &flags) >= 0 else { return false }
        return flags & UInt32(H5P_CRT_ORDER_TRACKED) != 0
    }

    private func unsafe(_ code: TensorFormatError.Code, _ message: String, tensor: String? = nil) -> TensorFormatError {
        TensorFormatError(code, message, file: label, tensor: tensor)
    }

    /// Keras' bomb rule: declared bytes of 4 GiB or more and above 1000x the stored bytes.
    static let bombFloorBytes = 1 << 32
    static let maximumExpansion = 1000

    /// The dataset as a tensor, after the safety rules; nil (and a note) when it is not one.
    private mutating func describe(dataset: hid_t, path: [String]) throws(TensorFormatError) -> HDF5Tensor? {
        let pathText = "/" + path.joined(separator: "/")
        let plist = try HDF5Handle(H5Dget_create_plist(dataset), .hdf5Unreadable, "cannot read \(pathText)", file: label)
        let layout = H5Pget_layout(plist.id)
        if layout == H5D_VIRTUAL, !allowUnsafe {
            throw unsafe(.hdf5VirtualDataset, "virtual dataset \(pathText) maps data from other files")
        }
        if H5Pget_external_count(plist.id) > 0, !allowUnsafe {
            throw unsafe(.hdf5ExternalStorage, "dataset \(pathText) stores its data in external files")
        }
        let space = try HDF5Handle(H5Dget_space(dataset), .hdf5Unreadable, "cannot read the dataspace of \(pathText)", file: label)
        let type = try HDF5Handle(H5Dget_type(dataset), .hdf5Unreadable, "cannot read the type of \(pathText)", file: label)
        var shape: [Int]
        switch H5Sget_simple_extent_type(space.id) {
        case H5S_SCALAR: shape = []
        case H5S_SIMPLE:
            let rank = Int(H5Sget_simple_extent_ndims(space.id))
            var dims = [hsize_t](repeating: 0, count: max(rank, 1))
            guard rank >= 0, H5Sget_simple_extent_dims(space.id, &dims, nil) >= 0 else {
                throw HDF5Library.failure(.hdf5Unreadable, "cannot read the shape of \(pathText)", file: label)
            }
            shape = dims.prefix(rank).map { Int(clamping: $0) }
        default:
            skipped.append(HDF5SkippedDataset(path: pathText, reason: "empty dataspace"))
            return nil
        }
        let elementSize = H5Tget_size(type.id)
        var declared = shape.contains(0) ? 0 : elementSize
        for dim in shape where declared > 0 {
            let (product, overflow) = declared.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw unsafe(.hdf5DeclaredSize, "dataset \(pathText) declares more bytes than can be addressed") }
            declared = product
        }
        let stored = Int(clamping: H5Dget_storage_size(dataset))
        let (expansionLimit, limitOverflows) = stored.multipliedReportingOverflow(by: HDF5FileScan.maximumExpansion)
        if declared >= HDF5FileScan.bombFloorBytes, !limitOverflows, declared > expansionLimit, !allowUnsafe {
            throw unsafe(.hdf5DeclaredSize, "dataset \(pathText) declares \(declared) bytes but stores \(stored): refusing a possible shape or decompression bomb")
        }
        let attribute = HDF5Attributes.string(dataset, "dtype")
        let dtype: DType, typeDescription: String
        switch try HDF5TypeMapping.classify(type.id, dtypeAttribute: attribute, file: label) {
        case .tensor(let found, _, let description):
            dtype = found
            typeDescription = description
        case .notTensor(let reason):
            skipped.append(HDF5SkippedDataset(path: pathText, reason: reason))
            return nil
        case .unsupported(let reason):
            skipped.append(HDF5SkippedDataset(path: pathText, reason: "unsupported type: \(reason)"))
            return nil
        }
        var byteCount = declared
        if HDF5TypeMapping.isPacked(dtype) {
            guard shape.count == 1, let elementShape = HDF5Attributes.integers(dataset, "shape"),
                  elementShape.allSatisfy({ $0 >= 0 }) else {
                throw TensorFormatError(.hdf5InvalidLayout, "packed \(dtype.rawValue) dataset \(pathText) needs a 1-D uint8 dataset and a shape attribute", file: label)
            }
            var elements = 1
            for dim in elementShape {
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(dim))
                guard !overflow else { throw TensorFormatError(.sizeOverflow, "shape attribute of \(pathText) overflows", file: label) }
                elements = product
            }
            guard let bytes = dtype.byteCount(elements: elements), bytes == shape[0] else {
                throw TensorFormatError(.sizeMismatch, "\(pathText) holds \(shape[0]) bytes, its shape attribute needs \(dtype.byteCount(elements: elements).map(String.init) ?? "a fractional number of")", file: label)
            }
            shape = elementShape.map { Int($0) }
            byteCount = bytes
        }
        var chunks: [Int]?
        var filters: [HDF5Filter] = []
        let storage: String
        switch layout {
        case H5D_CHUNKED:
            storage = "chunked"
            var dims = [hsize_t](repeating: 0, count: 32)
            let rank = H5Pget_chunk(plist.id, 32, &dims)
            if rank > 0 { chunks = dims.prefix(Int(rank)).map { Int(clamping: $0) } }
            for index in 0..<max(H5Pget_nfilters(plist.id), 0) {
                var flags: UInt32 = 0
                var count = 16
                var values = [UInt32](repeating: 0, count: 16)
                var name = [CChar](repeating: 0, count: 128)
                var config: UInt32 = 0
                let id = H5Pget_filter2(plist.id, UInt32(index), &flags, &count, &values, name.count, &name, &config)
                guard id >= 0 else { _ = HDF5Library.takeErrorMessage(); continue }
                filters.append(HDF5Filter(id: Int(id), name: HDF5Attributes.string(name), parameters: Array(values.prefix(min(count, 16)))))
            }
        case H5D_COMPACT: storage = "compact"
        case H5D_VIRTUAL: storage = "virtual"
        default: storage = "contiguous"
        }
        return HDF5Tensor(name: HDF5Names.dottedName(components: path), dtype: dtype, shape: shape, byteCount: byteCount,
                          path: pathText, file: label, storage: storage, chunks: chunks, filters: filters,
                          storedBytes: stored, typeDescription: typeDescription)
    }

    /// Keras 2: `layer_names` order, then each layer's `weight_names` order; names relative to the weights root.
    private mutating func collectKeras2(root: hid_t) throws(TensorFormatError) {
        let atRoot = HDF5FileScan.hasLayerNames(root)
        let base = atRoot ? [] : ["model_weights"]
        let weightsRoot = try HDF5Handle(H5Gopen2(root, atRoot ? "/" : "model_weights", dms_h5p_default()), .hdf5InvalidLayout,
                                         "no layer_names attribute and no model_weights group", file: label)
        guard let layers = HDF5FileScan.splitStrings(weightsRoot.id, "layer_names") else {
            throw TensorFormatError(.hdf5InvalidLayout, "Keras layer_names attribute is not a list of strings", file: label)
        }
        for layer in layers {
            let group = try HDF5Handle(H5Gopen2(weightsRoot.id, layer, dms_h5p_default()), .hdf5InvalidLayout,
                                       "layer '\(layer)' named in layer_names has no group", file: label)
            guard let weights = HDF5FileScan.splitStrings(group.id, "weight_names") else {
                throw TensorFormatError(.hdf5InvalidLayout, "layer '\(layer)' has no weight_names attribute", file: label)
            }
            for weight in weights {
                let relative = [layer] + weight.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
                guard let tensor = describedDatasets[base + relative] else {
                    throw TensorFormatError(.hdf5InvalidLayout, "weight '\(weight)' of layer '\(layer)' is not a readable dataset", file: label)
                }
                var named = tensor
                named.name = HDF5Names.dottedName(components: relative)
                tensors.append(named)
            }
        }
    }

    /// A Keras 2 list attribute, whole or split into `name0`, `name1`, ... (hdf5_format.py).
    static func splitStrings(_ object: hid_t, _ name: String) -> [String]? {
        if HDF5Attributes.exists(object, name) { return HDF5Attributes.strings(object, name) }
        var values: [String] = []
        var index = 0
        while HDF5Attributes.exists(object, "\(name)\(index)") {
            guard let part = HDF5Attributes.strings(object, "\(name)\(index)") else { return nil }
            values += part
            index += 1
        }
        return index > 0 ? values : nil
    }
}

/// An HDF5 object's identity across the files a walk enters: libhdf5's file number and the address.
struct HDF5ObjectAddress: Hashable {
    var file: UInt
    var address: UInt64
}
