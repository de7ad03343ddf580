#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ONNXProto

/// ONNX models as `Checkpoint`s (formats/onnx-read.md): initializers under their own names, mapped back
/// to the layout the checkpoint they were exported from had:
/// - a 2-D initializer that is a MatMul's B (or a Gemm's B without transB) is a Linear weight stored
///   [in, out]: read transposed, [out, in];
/// - a com.microsoft `MatMulNBits` node's B, scales and zero points are one F32 [N, K] tensor, named
///   after B without its `_Q4`/`_Q8` suffix;
/// - a `DequantizeLinear` node whose inputs are initializers is one F32 tensor named after its output
///   (transposed when that output is a MatMul's B);
/// - the exporter's graph constants (`/const/...`) are listed in the details, not as tensors.
/// The graph is checked first: every node input defined, no value produced twice, no cycle.
extension Checkpoint {
    /// Opens the model at `path`; external data is looked for beside it. `config` is the diffusers
    /// config found beside the model (a pipeline component's config.json), else the model's
    /// `dmsurgery.config` metadata_props entry is used.
    public static func openONNX(_ path: String, name: String, config: String? = nil) throws -> Checkpoint {
        let map = try MappedFile(path: path)
        return try openONNX(map, name: name, folder: (path as NSString).deletingLastPathComponent, config: config)
    }

    /// Opens a mapped model; `folder` is where its external data lies (nil: it may have none).
    static func openONNX(_ map: MappedFile, name: String, folder: String?, config: String? = nil) throws -> Checkpoint {
        do {
            let model = try ONNXModel.scan(map.bytes)
            try ONNXGraphRules.check(model)
            return try Checkpoint(onnx: model, map: map, folder: folder, name: name, config: config)
        } catch let error as TensorFormatError {
            throw error.inFile(name)
        }
    }

    /// Reads an ONNX model held in memory as `openONNX` reads a file (external data refused) and
    /// decodes every tensor; returns the decoded bytes. The fuzzer's entry (Sources/ONNXFuzzer).
    public static func decodeONNX(_ bytes: UnsafeRawBufferPointer) throws -> Int {
        let model = try ONNXModel.scan(bytes)
        try ONNXGraphRules.check(model)
        var stored: [ByteKey: ONNXStored] = [:]
        var byName: [ByteKey: ONNXModel.Initializer] = [:]
        for initializer in model.initializers {
            guard byName.updateValue(initializer, forKey: ByteKey(initializer.name)) == nil else {
                throw TensorFormatError(.duplicateKey, "two initializers have this name", tensor: initializer.name)
            }
            switch initializer.payload {
            case .raw(let range): stored[ByteKey(initializer.name)] = .mapped(file: 0, range: range)
            case .typed: stored[ByteKey(initializer.name)] = .inline(ONNXModel.typedBytes(initializer.proto, initializer.dataType))
            case .external: throw TensorFormatError(.onnxExternalPath, "external data of a model in memory", tensor: initializer.name)
            }
        }
        var total = 0
        for tensor in try ONNXTensorPlan(model: model, initializers: byName, stored: stored).tensors {
            total += try ONNXProvider.materialize(tensor.source) { source in
                switch source {
                case .inline(let inline): return inline
                case .mapped(_, let range): return [UInt8](bytes[range])
                }
            }.count
        }
        return total
    }

    convenience init(onnx model: ONNXModel, map: MappedFile, folder: String?, name: String, config: String?) throws {
        var external = ONNXExternalFiles(folder: folder)
        var stored: [ByteKey: ONNXStored] = [:]
        var byName: [ByteKey: ONNXModel.Initializer] = [:]
        for initializer in model.initializers {
            guard byName.updateValue(initializer, forKey: ByteKey(initializer.name)) == nil else {
                throw TensorFormatError(.duplicateKey, "two initializers have this name", tensor: initializer.name)
            }
            switch initializer.payload {
            case .raw(let range):
                stored[ByteKey(initializer.name)] = .mapped(file: 0, range: range)
            case .typed:
                stored[ByteKey(initializer.name)] = .inline(ONNXModel.typedBytes(initializer.proto, initializer.dataType))
            case .external(let location, let offset, _):
                let file = try external.index(of: location, tensor: initializer.name)
                let size = external.maps[file - 1].size
                guard offset <= size, initializer.byteCount <= size - offset else {
                    throw TensorFormatError(.onnxExternalRange, "external data \(offset)..<\(offset + initializer.byteCount) lies past the end of \(location) (\(size) bytes)", tensor: initializer.name)
                }
                stored[ByteKey(initializer.name)] = .mapped(file: file, range: offset..<(offset + initializer.byteCount))
            }
        }
        let plan = try ONNXTensorPlan(model: model, initializers: byName, stored: stored)
        var entries: [TensorEntry] = []
        var infos: [TensorInfo] = []
        var sources: [ByteKey: ONNXTensorSource] = [:]
        var virtualOffset = 0
        for tensor in plan.tensors {
            guard let bytes = tensor.dtype.byteCount(elements: tensor.shape.reduce(1, *)) else {
                throw TensorFormatError(.sizeOverflow, "decoded size overflows", tensor: tensor.name)
            }
            let info = TensorInfo(name: tensor.name, dtype: tensor.dtype, shape: tensor.shape, dataOffsets: virtualOffset..<(virtualOffset + bytes))
            virtualOffset += bytes
            infos.append(info)
            var fileIndex = 0, fileOffset = 0
            if case .stored(.mapped(let file, let range)) = tensor.source {
                fileIndex = file
                fileOffset = range.lowerBound
            }
            entries.append(TensorEntry(info: info, fileIndex: fileIndex, fileOffset: fileOffset))
            sources[ByteKey(tensor.name)] = tensor.source
        }
        var metadata = Metadata()
        for (key, value) in model.metadata { metadata[key] = value }
        var details = plan.notes
        if model.sparseInitializerCount > 0 {
            details.append(("onnx sparse initializers", "\(model.sparseInitializerCount) (not read)"))
        }
        let summary = ONNXGraphSummary(model, externalFiles: external.locations)
        var files = [CheckpointFile(path: name, size: map.size, header: SafetensorsHeader(tensors: infos, metadata: metadata, headerLength: 0))]
        for (location, map) in zip(external.locations, external.maps) {
            files.append(CheckpointFile(path: location, size: map.size, header: SafetensorsHeader(tensors: [], metadata: nil, headerLength: 0)))
        }
        let configJSON = try config ?? Checkpoint.configFromMetadata(metadata, file: name)
        try self.init(name: name, format: .onnx, files: files, entries: entries, metadata: metadata.isEmpty ? nil : metadata,
                      configJSON: configJSON, details: details,
                      provider: ONNXProvider(maps: [map] + external.maps, sources: sources))
        onnxGraph = summary
    }
}

/// Where an initializer's bytes are: a range of a mapped file (0: the model, then its external data
/// files) or bytes decoded from typed fields.
enum ONNXStored {
    case mapped(file: Int, range: Range<Int>)
    case inline([UInt8])
}

/// How a tensor of the checkpoint is made from initializers.
enum ONNXTensorSource {
    case stored(ONNXStored)
    /// A [rows, cols] matrix of `elementBytes`-byte elements, read as [cols, rows].
    case transposed(ONNXStored, rows: Int, cols: Int, elementBytes: Int)
    case matMulNBits(packed: ONNXStored, scales: ONNXStored, zeroPoints: ONNXStored?, n: Int, k: Int, bits: Int, blockSize: Int)
    case dequantizeLinear(x: ONNXStored, xType: ONNXDataType, xShape: [Int], scale: ONNXStored, scaleShape: [Int],
                          zeroPoint: ONNXStored?, axis: Int, blockSize: Int, transposed: Bool)
}

/// External data files of one model: each location checked (relative, no `..`, inside the model's
/// folder once symlinks are resolved) and mapped once.
struct ONNXExternalFiles {
    let folder: String?
    var locations: [String] = []
    var maps: [MappedFile] = []

    init(folder: String?) { self.folder = folder }

    /// The file index (1-based: 0 is the model) of `location`, mapping it on first use.
    mutating func index(of location: String, tensor: String) throws -> Int {
        if let i = locations.firstIndex(of: location) { return i + 1 }
        guard let folder else {
            throw TensorFormatError(.onnxExternalPath, "external data '\(location)' of a model read from standard input", tensor: tensor)
        }
        let components = location.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "/" || $0 == "\\" })
        guard !location.isEmpty, !location.hasPrefix("/"), !location.hasPrefix("\\"), !location.contains("\0"),
              !components.contains(where: { $0 == ".." }), !(location.count >= 2 && Array(location)[1] == ":") else {
            throw TensorFormatError(.onnxExternalPath, "external data location '\(location)' is not a relative path inside the model's folder", tensor: tensor)
        }
        let base = folder.isEmpty ? "." : folder
        let path = base + "/" + location
        guard Sys.exists(path) else {
            throw TensorFormatError(.onnxExternalPath, "external data file '\(location)' does not exist", tensor: tensor)
        }
        guard let realFolder = Self.realPath(base), let realFile = Self.realPath(path),
              realFile.hasPrefix(realFolder.hasSuffix("/") ? realFolder : realFolder + "/") else {
            throw TensorFormatError(.onnxExternalPath, "external data file '\(location)' resolves outside the model's folder", tensor: tensor)
        }
        maps.append(try MappedFile(path: path))
        locations.append(location)
        return locations.count
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// The graph rules every model passes before its tensors are listed: each node input is empty (an
/// optional input left out), a graph input, an initializer or some node's output; no value is produced
/// twice (by two nodes, or by a node and an initializer); the nodes have an order in which every
/// input exists before it is used (no cycle).
enum ONNXGraphRules {
    static func check(_ model: ONNXModel) throws(TensorFormatError) {
        var producer: [ByteKey: Int] = [:]
        var defined = Set(model.inputs.map { ByteKey($0.name) })
        for initializer in model.initializers { defined.insert(ByteKey(initializer.name)) }
        for (index, node) in model.nodes.enumerated() {
            for output in node.output where !output.isEmpty {
                guard !defined.contains(ByteKey(output)), producer.updateValue(index, forKey: ByteKey(output)) == nil else {
                    throw TensorFormatError(.onnxGraphCycle, "\(describe(node)) produces a value that is already defined", tensor: output)
                }
            }
        }
        // Kahn's algorithm over node-to-node dependencies.
        var waiting = [Int](repeating: 0, count: model.nodes.count)
        var users = [[Int]](repeating: [], count: model.nodes.count)
        for (index, node) in model.nodes.enumerated() {
            for input in node.input where !input.isEmpty {
                if let source = producer[ByteKey(input)] {
                    waiting[index] += 1
                    users[source].append(index)
                } else if !defined.contains(ByteKey(input)) {
                    throw TensorFormatError(.onnxUndefinedInput, "\(describe(node)) reads a value no graph input, initializer or node defines", tensor: input)
                }
            }
        }
        var ready = waiting.indices.filter { waiting[$0] == 0 }
        var done = 0
        while let index = ready.popLast() {
            done += 1
            for user in users[index] {
                waiting[user] -= 1
                if waiting[user] == 0 { ready.append(user) }
            }
        }
        if done < model.nodes.count, let stuck = waiting.indices.first(where: { waiting[$0] > 0 }) {
            let node = model.nodes[stuck]
            let input = node.input.first { producer[ByteKey($0)].map { waiting[$0] > 0 } ?? false } ?? node.input.first ?? ""
            throw TensorFormatError(.onnxGraphCycle, "\(describe(node)) depends on its own output through a cycle of \(model.nodes.count - done) nodes", tensor: input)
        }
    }

    static func describe(_ node: Onnx_NodeProto) -> String {
        "node \(node.name.isEmpty ? "" : "'\(node.name)' ")(\(node.opType))"
    }
}
