import TensorFormats

/// What a checkpoint holds, as far as its config or its tensor names tell.
public struct Architecture: Sendable, Equatable {
    public var name: String
    /// `config` when read from the diffusers config, `tensor names` when recognised from key patterns.
    public var evidence: String
    /// Selected config fields worth showing (block widths, cross-attention width, sample size).
    public var details: [(String, String)]

    public static func == (lhs: Architecture, rhs: Architecture) -> Bool {
        lhs.name == rhs.name && lhs.evidence == rhs.evidence && lhs.details.map { $0.0 + "=" + $0.1 } == rhs.details.map { $0.0 + "=" + $0.1 }
    }

    static let shownConfigKeys = ["sample_size", "in_channels", "out_channels", "block_out_channels", "layers_per_block",
                                  "cross_attention_dim", "attention_head_dim", "num_attention_heads", "norm_num_groups",
                                  "down_block_types", "up_block_types", "prediction_type"]

    public static func recognise(_ checkpoint: Checkpoint) -> Architecture? {
        if let text = checkpoint.configJSON, let config = try? JSONParser.parse(text), let name = config["_class_name"]?.stringValue {
            let details = shownConfigKeys.compactMap { key in config[key].map { (key, JSONWriter.compact($0)) } }
            return Architecture(name: name, evidence: "config", details: details)
        }
        let names = checkpoint.entries.map(\.name)
        func any(_ predicate: (String) -> Bool) -> Bool { names.contains(where: predicate) }
        let guess: String?
        if any({ $0.hasPrefix("model.diffusion_model.") }) {
            guess = any({ $0.hasPrefix("first_stage_model.") }) ? "Stable Diffusion checkpoint (original LDM layout)" : "LDM UNet (original layout)"
        } else if any({ $0.hasPrefix("down_blocks.") }) && any({ $0.hasPrefix("time_embedding.") }) {
            guess = any({ $0.contains(".attn2.to_k.") }) ? "UNet2DConditionModel" : "UNet2DModel"
        } else if any({ $0.hasPrefix("encoder.down_blocks.") }) && any({ $0.hasPrefix("decoder.up_blocks.") }) {
            guess = "AutoencoderKL"
        } else if any({ $0.hasPrefix("text_model.encoder.layers.") }) {
            guess = "CLIPTextModel"
        } else if any({ $0.hasPrefix("transformer_blocks.") }) {
            guess = "Transformer2DModel"
        } else {
            guess = nil
        }
        return guess.map { Architecture(name: $0, evidence: "tensor names", details: []) }
    }
}

/// Parameter counts grouped by dotted prefix (`down_blocks.0.resnets.0`).
public struct ModuleTree: Sendable {
    public struct Node: Sendable {
        public var path: String
        public var depth: Int
        public var parameters: Int
        public var tensors: Int
    }

    /// Prefixes down to `maxDepth` components, in first-appearance order of the sorted names.
    public static func nodes(_ entries: [TensorEntry], maxDepth: Int) -> [Node] {
        var order: [String] = []
        var totals: [ByteKey: (Int, Int)] = [:]
        let split = entries.map { ($0, $0.name.split(separator: ".", omittingEmptySubsequences: false)) }
        for (entry, parts) in split.sorted(by: { naturalLess($0.1, $1.1) }) {
            for depth in 1...min(maxDepth, max(1, parts.count - 1)) {
                let prefix = parts.prefix(depth).joined(separator: ".")
                let key = ByteKey(prefix)
                if totals[key] == nil { order.append(prefix) }
                let current = totals[key] ?? (0, 0)
                totals[key] = (current.0 + entry.elementCount, current.1 + 1)
            }
        }
        return order.map { path in
            Node(path: path, depth: path.split(separator: ".", omittingEmptySubsequences: false).count,
                 parameters: totals[ByteKey(path)]!.0, tensors: totals[ByteKey(path)]!.1)
        }
    }
}

/// Orders names with numbers compared by value: `blocks.2` before `blocks.10`.
public func naturalLess(_ a: String, _ b: String) -> Bool {
    naturalLess(a.split(separator: ".", omittingEmptySubsequences: false), b.split(separator: ".", omittingEmptySubsequences: false))
}

/// The same order over names already split at their dots.
func naturalLess(_ pa: [Substring], _ pb: [Substring]) -> Bool {
    // Byte equality, not String's canonical equivalence: names are compared as the bytes they are, and
    // this runs n log n times per `inspect`.
    for (x, y) in zip(pa, pb) where !x.utf8.elementsEqual(y.utf8) {
        if let ix = Int(x), let iy = Int(y) { return ix < iy }
        return x.utf8.lexicographicallyPrecedes(y.utf8)
    }
    return pa.count < pb.count
}
