import TensorFormats
import UNet

/// Parameters and multiply-accumulates per block of a diffusers UNet, and the inner widths a pruned one
/// keeps, read from its config and tensor shapes only: `inspect` stays a header read however big the
/// file is.
public struct UNetCost: Sendable {
    public struct Block: Sendable, Equatable {
        /// `conv_in`, `time_embedding`, `down.0`…, `mid`, `up.0`…, `conv_out` (with `conv_norm_out`).
        public var name: String
        public var parameters: Int
        /// Multiply-accumulates of one sample at `sampleSize` (convolutions, linears, attention products;
        /// norms, activations and the time embedding with its per-ResNet projections left out, as `UNet2D.forwardFLOPs`), nil without a sample size.
        public var macs: Int?
    }

    public struct Width: Sendable, Equatable {
        public var layer: String
        public var kind: PrunableKind
        /// Inner channels in the checkpoint.
        public var channels: Int
        /// Inner channels of the dense model of the config.
        public var baseChannels: Int
    }

    public var sampleSize: Int?
    /// Key and value length of cross-attention MACs (the CLIP text length).
    public var contextLength: Int
    public var blocks: [Block]
    /// Every prunable layer's inner width against its dense one.
    public var widths: [Width]

    public var isPruned: Bool { widths.contains { $0.channels != $0.baseChannels } }

    /// nil when the checkpoint has no UNet config this engine reads, or its shapes do not fit it.
    public init?(_ checkpoint: Checkpoint, contextLength: Int = 77) {
        guard let text = checkpoint.configJSON, let config = try? UNetConfig(json: text) else { return nil }
        let shapes = Dictionary(checkpoint.entries.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        guard let units = try? PruningUnits(config: config, shapes: shapes, file: checkpoint.name) else { return nil }
        self.contextLength = contextLength
        sampleSize = config.sampleSize
        let n = config.blockOutChannels.count

        /// The block a tensor belongs to and the side of the feature map it runs at (in halvings of the input).
        func place(_ name: String) -> (block: String, halvings: Int)? {
            let parts = name.split(separator: ".")
            guard let head = parts.first else { return nil }
            let index = parts.count > 1 ? Int(parts[1]) : nil
            switch head {
            case "conv_in": return ("conv_in", 0)
            case "time_embedding": return ("time_embedding", 0)
            case "conv_norm_out", "conv_out": return ("conv_out", 0)
            case "mid_block": return ("mid", n - 1)
            case "down_blocks":
                guard let i = index else { return nil }
                return ("down.\(i)", name.contains(".downsamplers.") ? i + 1 : i)
            case "up_blocks":
                guard let i = index else { return nil }
                return ("up.\(i)", name.contains(".upsamplers.") ? n - 2 - i : n - 1 - i)
            default: return nil
            }
        }

        var order: [String] = ["conv_in", "time_embedding"] + (0..<n).map { "down.\($0)" } + (config.hasMidBlock ? ["mid"] : [])
        order += (0..<n).map { "up.\($0)" } + ["conv_out"]
        var parameters: [String: Int] = [:]
        var macs: [String: Int] = [:]
        var overflowed = false
        /// Adds to a block's count with overflow checks (shapes and sample_size come from the file).
        func add(_ block: String, _ terms: [Int?]) {
            guard let sum = MemoryBudget.sum([macs[block, default: 0]] + terms) else { overflowed = true; return }
            macs[block] = sum
        }
        for entry in checkpoint.entries {
            guard let (block, halvings) = place(entry.name) else { continue }
            guard let count = MemoryBudget.sum([parameters[block, default: 0], entry.elementCount]) else { return nil }
            parameters[block] = count
            guard let size = config.sampleSize, entry.name.hasSuffix(".weight"), block != "time_embedding",
                  !entry.name.contains(".time_emb_proj.") else { continue }
            let side = max(1, size >> max(0, halvings))
            let pixels = side * side
            let s = entry.shape
            if s.count == 4 {
                add(block, [MemoryBudget.product([pixels] + s)])
            } else if s.count == 2 {
                let crossKeys = entry.name.contains(".attn2.to_k.") || entry.name.contains(".attn2.to_v.")
                add(block, [MemoryBudget.product([crossKeys ? contextLength : pixels, s[0], s[1]])])
                if entry.name.hasSuffix(".to_q.weight") {
                    let keys = entry.name.contains(".attn2.") ? contextLength : pixels
                    add(block, [MemoryBudget.product([2, pixels, keys, s[0]])])
                }
            }
        }
        if overflowed { return nil }
        if !config.hasMidBlock { order.removeAll { $0 == "mid" } }
        blocks = order.map { Block(name: $0, parameters: parameters[$0] ?? 0, macs: config.sampleSize == nil ? nil : macs[$0] ?? 0) }

        widths = units.layers.map { layer in
            let dense: Int
            switch layer.kind {
            case .resnet: dense = layer.unitSize * config.normNumGroups
            case .attention: dense = shapes[layer.name + ".to_out.0.weight"]?[0] ?? 0
            case .feedforward: dense = 4 * (shapes[layer.name + ".net.2.weight"]?[0] ?? 0)
            }
            return Width(layer: layer.name, kind: layer.kind, channels: layer.units * layer.unitSize, baseChannels: dense)
        }
    }

    public var json: JSONValue {
        .object([
            JSONMember("sample_size", sampleSize.map { .int($0) } ?? .null),
            JSONMember("context_length", .int(contextLength)),
            JSONMember("blocks", .array(blocks.map { b in
                .object([JSONMember("name", .string(b.name)), JSONMember("parameters", .int(b.parameters)),
                         JSONMember("macs", b.macs.map { .int($0) } ?? .null)])
            })),
            JSONMember("pruned", .bool(isPruned)),
            JSONMember("widths", .array(widths.map { w in
                .object([JSONMember("layer", .string(w.layer)), JSONMember("kind", .string(w.kind.rawValue)),
                         JSONMember("channels", .int(w.channels)), JSONMember("base_channels", .int(w.baseChannels))])
            })),
        ])
    }
}
