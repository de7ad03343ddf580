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
        let metadata = reader.metadata.isEmpty ? nil : Metadata(reader.metadata)
        let files = reader.files.enumerated().map { index, path in
            CheckpointFile(path: reader.files.count == 1 ? name : path, size: nil,
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
    private let tensorsByName: [String: HDF5Tensor]

    init(reader: HDF5Reader) {
        self.reader = reader
        tensorsByName = Dictionary(reader.tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    var isSequential: Bool { false }

    func read(_ entry: TensorEntry, chunkBytes: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let tensor = tensorsByName[entry.name] else {
            throw TensorFormatError(.notFound, "no such dataset", tensor: entry.name)
        }
        let bytes = try reader.read(tensor)
        try bytes.withUnsafeBytes { raw in
            if raw.isEmpty { return try body(raw) }
            var start = 0
            while start < raw.count {
                let end = min(raw.count, start + chunkBytes)
                try body(UnsafeRawBufferPointer(rebasing: raw[start..<end]))
                start = end
            }
        }
    }

    func finish() throws {}
}
