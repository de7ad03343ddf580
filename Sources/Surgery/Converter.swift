import Foundation
import TensorMath
import TensorFormats

/// One output tensor of a conversion and the input tensor it comes from.
public struct PlannedTensor: Sendable {
    public var source: TensorEntry
    public var name: String
    public var dtype: DType
    public var shape: [Int] { source.shape }
    public var byteCount: Int { dtype.byteCount(elements: source.elementCount)! }
}

/// Called with the number of input bytes processed so far.
public typealias ProgressSink = (Int) -> Void

/// What a conversion keeps, renames and casts, decided from the headers before any data moves.
public struct ConvertPlan {
    public let checkpoint: Checkpoint
    /// Output tensors, in the input's storage order.
    public let tensors: [PlannedTensor]

    /// `dtype` applies to floating-point tensors only; integers, booleans and complex values are copied
    /// unchanged (what `model.to(dtype)` does in torch).
    public init(checkpoint: Checkpoint, dtype: DType?, selection: TensorSelection) throws {
        self.checkpoint = checkpoint
        var planned: [PlannedTensor] = []
        var seen: [ByteKey: String] = [:]
        for entry in checkpoint.entries where selection.includes(entry.name) {
            let name = selection.rename(entry.name)
            guard !name.isEmpty else {
                throw SurgeryError(.nameCollision, "renaming leaves an empty name", file: checkpoint.name, tensor: entry.name)
            }
            if let other = seen.updateValue(entry.name, forKey: ByteKey(name)) {
                throw SurgeryError(.nameCollision, "'\(other)' and '\(entry.name)' would both be named '\(name)'", file: checkpoint.name, tensor: name)
            }
            let target = (dtype != nil && entry.dtype.isFloatingPoint) ? dtype! : entry.dtype
            planned.append(PlannedTensor(source: entry, name: name, dtype: target))
        }
        tensors = planned
    }

    /// Every tensor under a name chosen elsewhere (a layout's key table), types unchanged.
    public init(checkpoint: Checkpoint, named tensors: [(entry: TensorEntry, name: String)]) {
        self.checkpoint = checkpoint
        self.tensors = tensors.map { PlannedTensor(source: $0.entry, name: $0.name, dtype: $0.entry.dtype) }
    }

    public var specs: [(name: String, dtype: DType, shape: [Int])] {
        tensors.map { ($0.name, $0.dtype, $0.shape) }
    }

    /// The input's metadata, kept in its order; the model config embedded as `dmsurgery.config` when the
    /// output is one file or stream (so a pipeline keeps knowing the architecture) and removed when it
    /// goes to config.json beside the weights instead.
    public func metadata(embedConfig: Bool) -> Metadata? {
        var metadata = checkpoint.metadata
        if embedConfig, let config = checkpoint.configJSON, metadata?[MetadataKey.config] == nil {
            if metadata == nil { metadata = Metadata() }
            metadata![MetadataKey.config] = config
        } else if !embedConfig, metadata?[MetadataKey.config] != nil {
            metadata![MetadataKey.config] = nil
        }
        return metadata
    }

    /// True when writing `header` would read the input out of its storage order (a stream must then be spooled).
    public func needsReordering(for header: SafetensorsHeader) -> Bool {
        let byName = Dictionary(uniqueKeysWithValues: tensors.map { (ByteKey($0.name), $0.source.info.dataOffsets.lowerBound) })
        var last = -1
        for tensor in header.tensors {
            let offset = byName[ByteKey(tensor.name)]!
            if offset < last { return true }
            last = offset
        }
        return false
    }
}

/// Tensors whose values left the target's range during a cast.
public struct CastOverflow: Sendable {
    public var tensor: String
    public var count: Int
}

public struct ConvertResult: Sendable {
    public var tensors = 0
    public var bytesRead = 0
    public var bytesWritten = 0
    public var overflows: [CastOverflow] = []
    public var files: [String] = []

    public init() {}
}

public enum Converter {
    /// Writes the plan's tensors (or `subset`, by output name) as one safetensors file or stream.
    @discardableResult
    public static func writeSafetensors(_ plan: ConvertPlan, subset: Set<ByteKey>? = nil, metadata: Metadata?,
                                        to output: OutputFile, progress: ProgressSink? = nil,
                                        result: inout ConvertResult) throws -> SafetensorsHeader {
        let chosen = subset.map { names in plan.tensors.filter { names.contains(ByteKey($0.name)) } } ?? plan.tensors
        let writer = SafetensorsWriter(tensors: chosen.map { ($0.name, $0.dtype, $0.shape) }, metadata: metadata)
        if plan.checkpoint.isSequential && plan.needsReordering(for: writer.header) {
            throw SurgeryError(.unsupported, "output order differs from the stream's order; open it with random access", file: plan.checkpoint.name)
        }
        let byName = Dictionary(uniqueKeysWithValues: chosen.map { (ByteKey($0.name), $0) })
        var localResult = result
        try writer.write(to: output) { info, sink in
            try emit(byName[ByteKey(info.name)]!, from: plan.checkpoint, sink: sink, progress: progress, result: &localResult)
        }
        localResult.bytesWritten += output.bytesWritten
        result = localResult
        return writer.header
    }

    /// Streams one tensor through its cast into `sink`, counting it, its bytes and its overflows in `result`.
    static func emit(_ tensor: PlannedTensor, from checkpoint: Checkpoint, sink: (UnsafeRawBufferPointer) throws -> Void,
                     progress: ProgressSink?, result: inout ConvertResult) throws {
        var bytesRead = result.bytesRead
        let overflow = try emit(tensor, from: checkpoint, sink: sink) { bytes in
            bytesRead += bytes
            progress?(bytesRead)
        }
        result.bytesRead = bytesRead
        if overflow > 0 { result.overflows.append(CastOverflow(tensor: tensor.name, count: overflow)) }
        result.tensors += 1
    }

    /// Streams one tensor through a cast. Returns how many values overflowed the target type.
    static func emit(_ tensor: PlannedTensor, from checkpoint: Checkpoint,
                     sink: (UnsafeRawBufferPointer) throws -> Void, read: (Int) -> Void) throws -> Int {
        let source = tensor.source.dtype
        if source == tensor.dtype {
            try checkpoint.read(tensor.source) { piece in
                try sink(piece)
                read(piece.count)
            }
            return 0
        }
        var overflow = 0
        var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 64)
        defer { buffer.deallocate() }
        let granularity = 4  // a whole number of bytes on both sides for every packed type
        try checkpoint.read(tensor.source) { piece in
            let elements = piece.count * 8 / source.bitsPerElement
            let outBytes = tensor.dtype.byteCount(elements: elements)!
            if buffer.count < outBytes {
                buffer.deallocate()
                buffer = .allocate(byteCount: outBytes, alignment: 64)
            }
            let destination = buffer
            var partials = [Int](repeating: 0, count: Parallel.maximumParts)
            partials.withUnsafeMutableBufferPointer { slots in
                Parallel.forParts(count: elements, granularity: granularity) { worker, part in
                    let input = (part.lowerBound * source.bitsPerElement / 8)..<((part.upperBound * source.bitsPerElement + 7) / 8)
                    let output = (part.lowerBound * tensor.dtype.bitsPerElement / 8)..<((part.upperBound * tensor.dtype.bitsPerElement + 7) / 8)
                    slots[worker] = ElementCodec.cast(from: source, UnsafeRawBufferPointer(rebasing: piece[input]), to: tensor.dtype,
                                                      UnsafeMutableRawBufferPointer(rebasing: destination[output]), elements: part.count)
                }
            }
            overflow += partials.reduce(0, +)
            try sink(UnsafeRawBufferPointer(rebasing: destination[0..<outBytes]))
            read(piece.count)
        }
        return overflow
    }

    // MARK: Sharded output

    /// The shard file name huggingface uses: `model.safetensors` -> `model-00001-of-00003.safetensors`.
    public static func shardName(base: String, index: Int, count: Int) -> String {
        let stem = base.hasSuffix(".safetensors") ? String(base.dropLast(".safetensors".count)) : base
        return stem + "-" + pad(index + 1) + "-of-" + pad(count) + ".safetensors"
    }

    private static func pad(_ n: Int) -> String {
        let digits = String(n)
        return String(repeating: "0", count: max(0, 5 - digits.count)) + digits
    }

    /// Splits tensors into shards of at most `maxBytes` exactly as huggingface_hub's
    /// `split_state_dict_into_shards_factory`: in key order, a new shard when the next tensor would make
    /// the open one larger than the limit, and a tensor larger than the limit placed alone in a shard
    /// appended at once (numbered before the shard still filling). fixtures/sharded/NOTES.md has the details.
    public static func shardPlan(_ tensors: [PlannedTensor], maxBytes: Int) -> [[PlannedTensor]] {
        var shards: [[PlannedTensor]] = []
        var current: [PlannedTensor] = []
        var currentSize = 0
        for tensor in tensors {
            let size = tensor.byteCount
            if size > maxBytes {
                shards.append([tensor])
                continue
            }
            if currentSize + size > maxBytes {
                shards.append(current)
                current = []
                currentSize = 0
            }
            current.append(tensor)
            currentSize += size
        }
        if !current.isEmpty || shards.isEmpty { shards.append(current) }
        return shards
    }

    /// Key order for sharding: the order of the input's own index when it came sharded, else names in
    /// natural order (`blocks.2` before `blocks.10`), the closest a flat file gets to module order.
    public static func keyOrder(_ plan: ConvertPlan) -> [PlannedTensor] {
        if let order = plan.checkpoint.indexOrder {
            let rank = Dictionary(order.enumerated().map { (ByteKey($1), $0) }, uniquingKeysWith: { first, _ in first })
            return plan.tensors.sorted { (rank[ByteKey($0.source.name)] ?? Int.max, $0.name) < (rank[ByteKey($1.source.name)] ?? Int.max, $1.name) }
        }
        return plan.tensors.sorted { naturalLess($0.name, $1.name) }
    }

    /// The index beside shards. huggingface_hub writes `json.dump(indent=2)` with keys in insertion order and
    /// no final newline; diffusers (`diffusion_pytorch_model*`) sorts keys and ends with a newline.
    public static func indexJSON(shards: [[PlannedTensor]], names: [String], diffusersStyle: Bool) -> String {
        var weightMap: [(String, String)] = []
        var total = 0
        for (shard, file) in zip(shards, names) {
            for tensor in shard {
                weightMap.append((tensor.name, file))
                total += tensor.byteCount
            }
        }
        if diffusersStyle { weightMap.sort { $0.0.unicodeScalars.lexicographicallyPrecedes($1.0.unicodeScalars) } }
        let index: JSONValue = .object([
            JSONMember("metadata", .object([JSONMember("total_size", .int(total))])),
            JSONMember("weight_map", .object(weightMap.map { JSONMember($0.0, .string($0.1)) })),
        ])
        return JSONWriter.python(index) + (diffusersStyle ? "\n" : "")
    }

    /// Writes `base` (a `.safetensors` path) as shards plus index, or as the single file when one shard suffices.
    /// Every file is committed only after all were written.
    /// `order` gives the key order (state-dict order) when the caller knows it.
    public static func writeSharded(_ plan: ConvertPlan, base: String, maxBytes: Int, metadata: Metadata?, order: [String]? = nil,
                                    progress: ProgressSink? = nil, result: inout ConvertResult) throws {
        var ordered = keyOrder(plan)
        if let order {
            let rank = Dictionary(order.enumerated().map { (ByteKey($1), $0) }, uniquingKeysWith: { first, _ in first })
            ordered.sort { (rank[ByteKey($0.name)] ?? Int.max) < (rank[ByteKey($1.name)] ?? Int.max) }
        }
        let shards = shardPlan(ordered, maxBytes: maxBytes)
        if shards.count == 1 {
            let output = try OutputFile(path: base)
            try writeSafetensors(plan, metadata: metadata, to: output, progress: progress, result: &result)
            try output.commit()
            result.files.append(base)
            return
        }
        let directory = (base as NSString).deletingLastPathComponent
        let baseName = (base as NSString).lastPathComponent
        let names = shards.indices.map { shardName(base: baseName, index: $0, count: shards.count) }
        var outputs: [OutputFile] = []
        for (shard, name) in zip(shards, names) {
            let path = directory.isEmpty ? name : directory + "/" + name
            let output = try OutputFile(path: path)
            try writeSafetensors(plan, subset: Set(shard.map { ByteKey($0.name) }), metadata: metadata, to: output, progress: progress, result: &result)
            outputs.append(output)
        }
        let indexPath = base + ".index.json"
        let index = try OutputFile(path: indexPath)
        try index.write(Array(indexJSON(shards: shards, names: names, diffusersStyle: baseName.hasPrefix("diffusion_pytorch_model")).utf8))
        try OutputFile.commitTogether(outputs + [index])
        result.files += outputs.map(\.path) + [indexPath]
    }
}
