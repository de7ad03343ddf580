import TensorFormats
import UNet

/// Parameters and multiply-accumulates per part of a PixArt transformer and each block's kept widths
/// (heads, FFN), from its config and tensor shapes only, as `UNetCost` for UNets: `inspect` stays a
/// header read.
public struct PixArtCost: Sendable {
    public struct Block: Sendable, Equatable {
        /// `patch_embed`, `timestep` (adaLN-single and the caption projection), `block.<i>`, `final`.
        public var name: String
        public var parameters: Int
        /// Multiply-accumulates of one sample at `sampleSize` with `captionTokens` caption tokens
        /// (linears and the attention products; norms and activations left out).
        public var macs: Int
        /// Self- and cross-attention heads and the FFN width (blocks only).
        public var selfHeads: Int?
        public var crossHeads: Int?
        public var ffnWidth: Int?
    }

    /// The name `inspect` gives the architecture.
    public static let architecture = "pixart-transformer"
    public var sampleSize: Int
    public var patchSize: Int
    public var captionTokens: Int
    public var baseHeads: Int
    public var baseFFNWidth: Int
    public var blocks: [Block]

    public var tokens: Int { (sampleSize / patchSize) * (sampleSize / patchSize) }
    public var isPruned: Bool {
        blocks.contains { b in
            (b.selfHeads.map { $0 != baseHeads } ?? false) || (b.crossHeads.map { $0 != baseHeads } ?? false)
                || (b.ffnWidth.map { $0 != baseFFNWidth } ?? false)
        }
    }

    /// nil when the checkpoint is not a PixArt transformer this engine reads, or its shapes do not fit.
    public init?(_ checkpoint: Checkpoint, captionTokens: Int = 300) {
        guard let text = checkpoint.configJSON, PixArtConfig.describes(json: text),
              let config = try? PixArtConfig(json: text) else { return nil }
        let shapes = Dictionary(checkpoint.entries.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        guard let model = try? PixArtTransformer(config: config, shapes: shapes) else { return nil }
        sampleSize = config.sampleSize
        patchSize = config.patchSize
        self.captionTokens = captionTokens
        baseHeads = config.attentionHeads
        baseFFNWidth = 4 * model.dim
        let tokens = (config.sampleSize / config.patchSize) * (config.sampleSize / config.patchSize)
        func part(_ name: String) -> String? {
            if name.hasPrefix("pos_embed.") { return "patch_embed" }
            if name.hasPrefix("adaln_single.") || name.hasPrefix("caption_projection.") { return "timestep" }
            if name.hasPrefix("transformer_blocks."), let i = name.split(separator: ".").dropFirst().first { return "block.\(i)" }
            if name == "scale_shift_table" || name.hasPrefix("proj_out.") { return "final" }
            return nil
        }
        var parameters: [String: Int] = [:]
        for entry in checkpoint.entries {
            guard let p = part(entry.name), let sum = MemoryBudget.sum([parameters[p, default: 0], entry.elementCount]) else { return nil }
            parameters[p] = sum
        }
        blocks = model.forwardMACs(tokens: tokens, captionTokens: captionTokens).map { name, macs in
            let index = name.hasPrefix("block.") ? Int(name.dropFirst(6)) : nil
            let block = index.map { model.blocks[$0] }
            return Block(name: name, parameters: parameters[name] ?? 0, macs: macs, selfHeads: block?.attn1.heads,
                         crossHeads: block?.attn2.heads, ffnWidth: block?.ffIn.outFeatures)
        }
    }

    public var json: JSONValue {
        .object([
            JSONMember("architecture", .string(Self.architecture)),
            JSONMember("sample_size", .int(sampleSize)),
            JSONMember("tokens", .int(tokens)),
            JSONMember("caption_tokens", .int(captionTokens)),
            JSONMember("blocks", .array(blocks.map { b in
                .object([JSONMember("name", .string(b.name)), JSONMember("parameters", .int(b.parameters)),
                         JSONMember("macs", .int(b.macs)), JSONMember("self_heads", b.selfHeads.map { .int($0) } ?? .null),
                         JSONMember("cross_heads", b.crossHeads.map { .int($0) } ?? .null),
                         JSONMember("ffn_width", b.ffnWidth.map { .int($0) } ?? .null)])
            })),
            JSONMember("pruned", .bool(isPruned)),
        ])
    }
}
