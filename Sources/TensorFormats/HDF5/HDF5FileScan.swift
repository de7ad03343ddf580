import CHDF5
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
    /// Keyed by the components' bytes: two links whose names are Unicode-equivalent (`é` and `e` +
    /// U+0301) are two datasets, and a `[String]` key would describe one with the other's shape.
    private var describedDatasets: [[ByteKey]: HDF5Tensor] = [:]

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
                guard var tensor = describedDatasets[components.map(ByteKey.init)] else { continue }
                if components.count == 1 {
                    tensor.name = HDF5Names.tensorName(flatLinkName: components[0])
                    tensors.append(tensor)
                } else {
                    skipped.append(HDF5SkippedDataset(path: tensor.path, reason: "not at the root of a dmsurgery layout"))
                }
            }
        case .keras3, .generic:
            tensors = datasets.compactMap { describedDatasets[$0.map(ByteKey.init)] }
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
                if let tensor = try describe(dataset: object, path: path) { describedDatasets[path.map(ByteKey.init)] = tensor }
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
        if MemoryBudget.isBomb(declared: declared, stored: stored), !allowUnsafe {
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
                guard let tensor = describedDatasets[(base + relative).map(ByteKey.init)] else {
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
