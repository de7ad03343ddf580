#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// How a checkpoint should be opened.
public struct OpenOptions: Sendable {
    /// Spool a non-seekable input to a temporary file so tensors can be read in any order.
    public var randomAccess: Bool
    /// Read HDF5 files that Keras would refuse (external links, virtual datasets, huge declared sizes).
    public var allowUnsafeHDF5: Bool
    /// Force an HDF5 layout instead of recognising it (`keras2`, `keras3`, `generic`, `dmsurgery`).
    public var hdf5Layout: String?
    /// diffusers weight variant read from model folders (`fp16`: `diffusion_pytorch_model.fp16.safetensors`).
    public var variant: String?

    public init(randomAccess: Bool = false, allowUnsafeHDF5: Bool = false, hdf5Layout: String? = nil, variant: String? = nil) {
        self.randomAccess = randomAccess
        self.allowUnsafeHDF5 = allowUnsafeHDF5
        self.hdf5Layout = hdf5Layout
        self.variant = variant
    }
}

extension Checkpoint {
    /// Opens a safetensors file, a `*.safetensors.index.json`, a diffusers model folder (or a pipeline
    /// folder with `unet/`), an ONNX model (`.onnx`, or a folder with `model.onnx`), or `-` for standard input.
    public static func open(_ path: String, options: OpenOptions = OpenOptions()) throws -> Checkpoint {
        if path == "-" { return try openStandardInput(options: options) }
        guard Sys.exists(path) else { throw TensorFormatError(.notFound, "no such file or directory", file: path) }
        if Sys.isDirectory(path) { return try openFolder(path, options: options) }
        if path.hasSuffix(".index.json") {
            let configPath = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("config.json")
            return try openIndex(path, name: path, config: try readConfig(configPath), format: .shardedSafetensors)
        }
        // HDF5 and zstd inputs are recognised by signature; Keras 3 shard indexes by suffix.
        if HDF5Reader.isShardedIndex(path) { return try openHDF5(path, name: path, options: options) }
        if path.lowercased().hasSuffix(".gguf") || hasGGUFMagic(fileSignatureBytes(path)) { return try openGGUF(path, name: path) }
        if path.lowercased().hasSuffix(".onnx") { return try openONNX(path, name: path) }
        switch signature(ofFile: path) {
        case .hdf5: return try openHDF5(path, name: path, options: options)
        case .zstd: return try openZstdFile(path, options: options)
        case .other: break
        }
        return try openFile(path, name: path, options: options)
    }

    static func openFile(_ path: String, name: String, descriptor: Int32? = nil, options: OpenOptions) throws -> Checkpoint {
        let map = try MappedFile(path: path, descriptor: descriptor)
        if let other = try openSniffed(map, name: name) { return other }
        let header: SafetensorsHeader
        do {
            header = try parseHeader(map)
        } catch {
            throw error.inFile(name)
        }
        let config = try configFromMetadata(header.metadata, file: name)
        let file = CheckpointFile(path: path, size: map.size, header: header)
        return try Checkpoint(name: name, format: .safetensors, files: [file], entries: entries(of: header, fileIndex: 0),
                              metadata: header.metadata, configJSON: config, provider: MappedProvider(maps: [map]))
    }

    static func parseHeader(_ map: MappedFile) throws(TensorFormatError) -> SafetensorsHeader {
        let bytes = map.bytes
        let n = try SafetensorsHeader.headerLength(prefix: UnsafeRawBufferPointer(rebasing: bytes[0..<min(8, bytes.count)]), fileSize: map.size)
        return try SafetensorsHeader.parse(json: map.bytes(8..<(8 + n)), fileSize: map.size)
    }

    static func entries(of header: SafetensorsHeader, fileIndex: Int) -> [TensorEntry] {
        header.tensorsInStorageOrder.map {
            TensorEntry(info: $0, fileIndex: fileIndex, fileOffset: header.dataStart + $0.dataOffsets.lowerBound)
        }
    }

    static func configFromMetadata(_ metadata: Metadata?, file: String) throws(TensorFormatError) -> String? {
        guard let text = metadata?[MetadataKey.config] else { return nil }
        try validateConfig(text, file: file)
        return text
    }

    static func validateConfig(_ text: String, file: String) throws(TensorFormatError) {
        let parsed: JSONValue
        do {
            parsed = try JSONParser.parse(text)
        } catch {
            throw TensorFormatError(.invalidConfig, "model config is not valid JSON: \(error.message)", file: file, cause: error)
        }
        guard case .object = parsed else {
            throw TensorFormatError(.invalidConfig, "model config is not a JSON object", file: file)
        }
    }

    // MARK: Standard input

    static func openStandardInput(options: OpenOptions) throws -> Checkpoint {
        let st = try Sys.fileStatus(STDIN_FILENO, "-")
        let stdin = FileDescriptorSource(fd: STDIN_FILENO, name: "-")
        if st.st_mode & S_IFMT == S_IFREG {
            // A redirected file: mapped, unless it is HDF5 or zstd.
            if hasGGUFMagic(signatureBytes(descriptor: STDIN_FILENO, path: "-")) { return try openGGUF("-", name: "-", descriptor: STDIN_FILENO) }
            if case .other = signature(ofDescriptor: STDIN_FILENO, path: "-") {
                return try openFile("-", name: "-", descriptor: STDIN_FILENO, options: options)
            }
            return try openSniffing(stdin, options: options)
        }
        // Pipes: zstd and HDF5 recognised by their first bytes.
        return try openSniffing(stdin, options: options)
    }

    /// Reads a safetensors header from a stream; tensors follow in storage order.
    public static func openStream(_ source: ByteSource, name: String) throws -> Checkpoint {
        var prefix = [UInt8](repeating: 0, count: 8)
        do {
            let got = try prefix.withUnsafeMutableBytes { (raw) throws(TensorFormatError) in try source.readFully(into: raw) }
            if got < 8 {
                throw TensorFormatError(.tooSmall, "input is \(got) bytes, shorter than the 8-byte header length")
            }
            let n = try prefix.withUnsafeBytes { (raw) throws(TensorFormatError) in try SafetensorsHeader.headerLength(prefix: raw, fileSize: nil) }
            var json = [UInt8](repeating: 0, count: n)
            let read = try json.withUnsafeMutableBytes { (raw) throws(TensorFormatError) in try source.readFully(into: raw) }
            guard read == n else {
                throw TensorFormatError(.headerPastEOF, "header length \(n) runs past the end of the input (\(8 + read) bytes)")
            }
            let header = try json.withUnsafeBytes { (raw) throws(TensorFormatError) in try SafetensorsHeader.parse(json: raw, fileSize: nil) }
            let config = try configFromMetadata(header.metadata, file: name)
            let file = CheckpointFile(path: name, size: nil, header: header)
            return try Checkpoint(name: name, format: .safetensors, files: [file], entries: entries(of: header, fileIndex: 0),
                                  metadata: header.metadata, configJSON: config,
                                  provider: StreamProvider(source: source, dataLength: header.dataLength))
        } catch let error as TensorFormatError {
            throw explainStreamFailure(error, prefix: prefix, name: name).inFile(name)
        }
    }

    /// Copies a stream into a `SpoolFile` and returns its descriptor (and a label for errors): the space
    /// is freed when the descriptor closes, whatever happens to the process.
    public static func spool(_ source: ByteSource) throws(TensorFormatError) -> (path: String, fd: Int32) {
        let spool = try SpoolFile.filled(from: source)
        return ("/proc/self/fd/\(spool.fd)", spool.fd)
    }

    // MARK: Folders and shards

    /// The model config beside the weights, if there is one.
    static func readConfig(_ path: String) throws -> String? {
        guard Sys.exists(path) else { return nil }
        guard let text = String(validating: try MappedFile.contents(of: path), as: UTF8.self) else {
            throw TensorFormatError(.invalidConfig, "cannot read config.json as UTF-8", file: path)
        }
        try validateConfig(text, file: path)
        return text
    }

    static func openFolder(_ directory: String, options: OpenOptions) throws -> Checkpoint {
        let root = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        if Sys.exists(root + "/model_index.json"), Sys.isDirectory(root + "/unet") {
            return try openFolder(root + "/unet", options: options)
        }
        let config = try readConfig(root + "/config.json")
        let names = PipelineFolder.weightNames(variant: options.variant)
        guard let weights = names.first(where: { Sys.exists(root + "/" + $0) }) else {
            // An ONNX pipeline's component folder (OnnxRuntimeModel): model.onnx, perhaps a config.json.
            if Sys.exists(root + "/" + PipelineFolder.onnxModelName) {
                return try openONNX(root + "/" + PipelineFolder.onnxModelName, name: root + "/" + PipelineFolder.onnxModelName, config: config)
            }
            let hint = Sys.exists(root + "/diffusion_pytorch_model.bin") ? " (pickle .bin weights are not read: convert them with diffusers first)" : ""
            throw TensorFormatError(.unknownFormat, "folder has none of \(names.joined(separator: ", ")), \(PipelineFolder.onnxModelName)\(hint)", file: directory)
        }
        let path = root + "/" + weights
        if weights.hasSuffix(".index.json") {
            return try openIndex(path, name: directory, config: config, format: .diffusersFolder)
        }
        let single = try openFile(path, name: path, options: options)
        return try Checkpoint(name: directory, format: .diffusersFolder, files: single.files, entries: single.entries,
                              metadata: single.metadata, configJSON: config ?? single.configJSON, provider: single.provider)
    }

    /// Reads a huggingface `*.safetensors.index.json` and every shard it names, checking that the
    /// weight map and the shards agree tensor for tensor.
    static func openIndex(_ indexPath: String, name: String, config: String?, format: CheckpointFormat) throws -> Checkpoint {
        let data = try MappedFile.contents(of: indexPath)
        let parsed: Result<JSONValue, JSONParseError> = data.withUnsafeBytes { raw in
            Result { () throws(JSONParseError) in try JSONParser.parse(raw) }
        }
        let value: JSONValue
        switch parsed {
        case .success(let v): value = v
        case .failure(let error):
            if case .duplicateKey(let key, _) = error.kind {
                throw TensorFormatError(.duplicateKey, "index repeats the key '\(key)'", file: indexPath, tensor: key)
            }
            throw TensorFormatError(.invalidIndex, "index is not valid JSON: \(error.message)", file: indexPath, cause: error)
        }
        guard case .object(let map)? = value["weight_map"] else {
            throw TensorFormatError(.invalidIndex, "index has no weight_map object", file: indexPath)
        }
        let directory = (indexPath as NSString).deletingLastPathComponent
        var shardNames: [String] = []
        var expected: [ByteKey: String] = [:]
        for member in map {
            guard let file = member.value.stringValue, !file.contains("/"), !file.isEmpty else {
                throw TensorFormatError(.invalidIndex, "weight_map entry is not a file name in the index's folder", file: indexPath, tensor: member.key)
            }
            expected[ByteKey(member.key)] = file
            if !shardNames.contains(file) { shardNames.append(file) }
        }
        shardNames.sort()
        var files: [CheckpointFile] = []
        var maps: [MappedFile] = []
        var entries: [TensorEntry] = []
        var metadata: Metadata?
        // Every shard's header first: a tensor held by two shards is a duplicate (sharding.md), whichever
        // of the two the index names.
        var shards: [(path: String, map: MappedFile, header: SafetensorsHeader)] = []
        var holder: [ByteKey: String] = [:]
        for shard in shardNames {
            let path = directory.isEmpty ? shard : directory + "/" + shard
            let map = try MappedFile(path: path)
            let header: SafetensorsHeader
            do { header = try parseHeader(map) } catch { throw error.inFile(path) }
            for tensor in header.tensors {
                if let other = holder.updateValue(shard, forKey: ByteKey(tensor.name)) {
                    throw TensorFormatError(.duplicateKey, "the tensor is in two shards, \(other) and \(shard)", file: path, tensor: tensor.name)
                }
            }
            shards.append((path, map, header))
        }
        for (index, (path, map, header)) in shards.enumerated() {
            let shard = shardNames[index]
            for tensor in header.tensors {
                guard let listed = expected[ByteKey(tensor.name)] else {
                    throw TensorFormatError(.invalidIndex, "shard holds a tensor the index does not list", file: path, tensor: tensor.name)
                }
                guard listed == shard else {
                    throw TensorFormatError(.invalidIndex, "index places the tensor in \(listed)", file: path, tensor: tensor.name)
                }
            }
            if let shardMetadata = header.metadata {
                if metadata == nil { metadata = Metadata() }
                metadata!.merge(shardMetadata)
            }
            files.append(CheckpointFile(path: path, size: map.size, header: header))
            maps.append(map)
            entries += Checkpoint.entries(of: header, fileIndex: index)
        }
        let present = Set(entries.map { ByteKey($0.name) })
        if let missing = map.first(where: { !present.contains(ByteKey($0.key)) }) {
            throw TensorFormatError(.invalidIndex, "index lists a tensor that its shard does not hold", file: indexPath, tensor: missing.key)
        }
        let resolvedConfig = try config ?? configFromMetadata(metadata, file: indexPath)
        let checkpoint = try Checkpoint(name: name, format: format, files: files, entries: entries, metadata: metadata,
                                        configJSON: resolvedConfig, provider: MappedProvider(maps: maps))
        checkpoint.indexOrder = map.map(\.key)
        return checkpoint
    }
}
