import CHDF5

/// The layouts dmsurgery writes (formats/hdf5.md, "Writing").
public enum HDF5WriteLayout: String, Sendable, CaseIterable {
    /// One root-level dataset per tensor, in order, metadata as root attributes: reads back exactly.
    case dmsurgery
    /// Keras 3 `.weights.h5`: the dotted name is the group path (`layers.dense.vars.0`).
    case keras3
}

extension OutputCompression {
    /// Target bytes per chunk: large enough for good ratios, small enough for partial reads.
    static let chunkBytes = 1 << 20

    /// A chunk shape for `shape`: the whole tensor, leading dimensions halved until it fits `chunkBytes`.
    static func chunkShape(_ shape: [Int], elementSize: Int) -> [Int] {
        var chunk = shape.map { max($0, 1) }
        while chunk.reduce(elementSize, { $0.multipliedReportingOverflow(by: $1).overflow ? .max : $0 * $1 }) > chunkBytes,
              let dim = chunk.firstIndex(where: { $0 > 1 }) {
            chunk[dim] = (chunk[dim] + 1) / 2
        }
        return chunk
    }
}

/// Writes tensors into a new HDF5 file, one dataset per call (memory: the caller's one tensor).
///
/// The file is written where told; the caller writes to a temporary path and renames it, as for
/// every other output.
public final class HDF5Writer {
    public let path: String
    public let layout: HDF5WriteLayout
    public let compression: OutputCompression?
    private let label: String
    private var file: hid_t
    /// Group paths created so far, by their bytes (as HDF5 names them).
    private var groups: Set<ByteKey> = []

    public init(path: String, layout: HDF5WriteLayout = .dmsurgery, compression: OutputCompression? = nil,
                metadata: [(key: String, value: String)] = [], label: String? = nil,
                emptyMetadata: Bool = false) throws(TensorFormatError) {
        self.path = path
        self.layout = layout
        self.compression = compression
        let label = label ?? path
        self.label = label
        file = try HDF5Library.locked { () throws(TensorFormatError) -> hid_t in
            let plist = try HDF5Handle(H5Pcreate(dms_h5p_file_create()), .hdf5Write, "cannot create a property list", file: label)
            let order = UInt32(H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED)
            guard H5Pset_link_creation_order(plist.id, order) >= 0, H5Pset_attr_creation_order(plist.id, order) >= 0 else {
                throw HDF5Library.failure(.hdf5Write, "cannot track creation order", file: label)
            }
            let file = H5Fcreate(path, dms_h5f_acc_trunc(), plist.id, dms_h5p_default())
            guard file >= 0 else { throw HDF5Library.failure(.hdf5Write, "cannot create the HDF5 file", file: label) }
            return file
        }
        do {
            try HDF5Library.locked { () throws(TensorFormatError) in
                if layout == .dmsurgery {
                    try HDF5Attributes.write(file, HDF5Reader.layoutAttribute, string: HDF5Reader.layoutValue, file: label)
                    if emptyMetadata && metadata.isEmpty {
                        try HDF5Attributes.write(file, HDF5Reader.emptyMetadataAttribute, string: "{}", file: label)
                    }
                }
                for (key, value) in metadata {
                    guard key != HDF5Reader.layoutAttribute, key != HDF5Reader.emptyMetadataAttribute, !key.isEmpty, !key.utf8.contains(0) else {
                        throw TensorFormatError(.invalidMetadata, "metadata key '\(key)' cannot name an HDF5 attribute (empty, reserved or containing NUL)", file: label)
                    }
                    if value.utf8.contains(0) {
                        // C strings end at NUL: such a value is kept exactly as its UTF-8 bytes.
                        try HDF5Attributes.write(file, key, bytes: Array(value.utf8), file: label)
                    } else {
                        try HDF5Attributes.write(file, key, string: value, file: label)
                    }
                }
            }
        } catch {
            HDF5Library.lock.withLock { _ = H5Fclose(file) }
            throw error
        }
    }

    deinit {
        if file >= 0 { HDF5Library.lock.withLock { _ = H5Fclose(file) } }
    }

    /// Writes one tensor; `bytes` is its raw little-endian data (safetensors layout).
    public func write(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer) throws(TensorFormatError) {
        guard file >= 0 else { throw TensorFormatError(.hdf5Write, "the writer is closed", file: label, tensor: name) }
        // HDF5 link names are C strings: a NUL would silently cut the name ("a\0b" read back as "a").
        guard !name.utf8.contains(0) else {
            throw TensorFormatError(.unrepresentableName, "HDF5 cannot name a dataset with a NUL byte in it", file: label, tensor: name)
        }
        var elements = 1
        for dim in shape {
            guard dim >= 0 else { throw TensorFormatError(.invalidShape, "negative dimension", file: label, tensor: name) }
            let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw TensorFormatError(.sizeOverflow, "element count overflows", file: label, tensor: name) }
            elements = product
        }
        guard let byteCount = dtype.byteCount(elements: elements), byteCount == bytes.count else {
            throw TensorFormatError(.sizeMismatch, "\(bytes.count) bytes for \(dtype.rawValue) \(shape)", file: label, tensor: name)
        }
        let (parent, linkName) = try location(of: name)
        try HDF5Library.locked { () throws(TensorFormatError) in
            let packed = HDF5TypeMapping.isPacked(dtype)
            let type = try HDF5TypeMapping.fileType(for: dtype, file: label)
            var dims = (packed ? [byteCount] : shape).map { hsize_t($0) }
            let space = try HDF5Handle(dims.isEmpty ? H5Screate(H5S_SCALAR) : H5Screate_simple(Int32(dims.count), &dims, nil),
                                       .hdf5Write, "cannot create a dataspace", file: label, tensor: name)
            let plist = try HDF5Handle(H5Pcreate(dms_h5p_dataset_create()), .hdf5Write, "cannot create a property list", file: label, tensor: name)
            H5Pset_fill_time(plist.id, H5D_FILL_TIME_NEVER)
            if let compression, elements > 0, !dims.isEmpty {
                try applyCompression(compression, plist: plist.id, dims: dims.map { Int($0) }, elementSize: H5Tget_size(type.id), tensor: name)
            }
            let group = try HDF5Handle(H5Gopen2(file, parent, dms_h5p_default()), .hdf5Write, "cannot open group \(parent)", file: label, tensor: name)
            let dataset = try HDF5Handle(H5Dcreate2(group.id, linkName, type.id, space.id, dms_h5p_default(), plist.id, dms_h5p_default()),
                                         .hdf5Write, "cannot create the dataset", file: label, tensor: name)
            if let attribute = HDF5TypeMapping.attributeNames[dtype] {
                try HDF5Attributes.write(dataset.id, "dtype", string: attribute, file: label)
            }
            if packed {
                try HDF5Attributes.write(dataset.id, "shape", integers: shape.map { Int64($0) }, file: label)
            }
            if byteCount > 0, H5Dwrite(dataset.id, type.id, dms_h5s_all(), dms_h5s_all(), dms_h5p_default(), bytes.baseAddress) < 0 {
                throw HDF5Library.failure(.hdf5Write, "cannot write the dataset", file: label, tensor: name)
            }
        }
    }

    /// Flushes and closes the file; it is complete once this returns.
    public func close() throws(TensorFormatError) {
        guard file >= 0 else { return }
        let status = HDF5Library.locked { () -> herr_t in
            let status = H5Fclose(file)
            file = -1
            return status
        }
        guard status >= 0 else { throw HDF5Library.failure(.hdf5Write, "cannot close the HDF5 file", file: label) }
    }

    /// The parent group path and link name of a tensor, creating Keras 3 groups as needed.
    private func location(of name: String) throws(TensorFormatError) -> (String, String) {
        switch layout {
        case .dmsurgery:
            guard let link = HDF5Names.flatLinkName(tensor: name) else {
                throw TensorFormatError(.invalidArgument, "HDF5 cannot name a dataset with the empty string", file: label, tensor: name)
            }
            return ("/", link)
        case .keras3:
            guard let components = HDF5Names.components(dottedName: name) else {
                throw TensorFormatError(.invalidArgument, "the name has an empty component, which HDF5 cannot name", file: label, tensor: name)
            }
            var parent = ""
            for component in components.dropLast() {
                parent += "/" + component
                if groups.contains(ByteKey(parent)) { continue }
                try HDF5Library.locked { () throws(TensorFormatError) in
                    if H5Lexists(file, parent, dms_h5p_default()) <= 0 {
                        _ = HDF5Library.takeErrorMessage()
                        let plist = try HDF5Handle(H5Pcreate(dms_h5p_group_create()), .hdf5Write, "cannot create a property list", file: label, tensor: name)
                        H5Pset_link_creation_order(plist.id, UInt32(H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED))
                        _ = try HDF5Handle(H5Gcreate2(file, parent, dms_h5p_default(), plist.id, dms_h5p_default()),
                                           .hdf5Write, "cannot create group \(parent)", file: label, tensor: name)
                    }
                }
                groups.insert(ByteKey(parent))
            }
            return (parent.isEmpty ? "/" : parent, components.last!)
        }
    }

    private func applyCompression(_ compression: OutputCompression, plist: hid_t, dims: [Int], elementSize: Int, tensor: String) throws(TensorFormatError) {
        var chunk = OutputCompression.chunkShape(dims, elementSize: elementSize).map { hsize_t($0) }
        guard H5Pset_chunk(plist, Int32(chunk.count), &chunk) >= 0 else {
            throw HDF5Library.failure(.hdf5Write, "cannot set chunking", file: label, tensor: tensor)
        }
        if elementSize > 1, H5Pset_shuffle(plist) < 0 {
            throw HDF5Library.failure(.hdf5Write, "cannot add the shuffle filter", file: label, tensor: tensor)
        }
        let status: herr_t
        switch compression.codec {
        case .gzip:
            status = H5Pset_deflate(plist, UInt32(compression.level))
        case .zstd:
            var level = UInt32(compression.level)
            status = H5Pset_filter(plist, H5Z_filter_t(DMS_H5Z_FILTER_ZSTD), UInt32(H5Z_FLAG_MANDATORY), 1, &level)
        }
        guard status >= 0 else {
            throw HDF5Library.failure(.hdf5Write, "cannot add the \(compression.codec.rawValue) filter", file: label, tensor: tensor)
        }
    }
}
