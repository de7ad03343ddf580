import Foundation

/// The two diffusers UNet classes this engine runs.
public enum UNetFamily: String, Sendable {
    /// `UNet2DConditionModel` (Stable Diffusion 1.x/2.x): cross-attention on encoder hidden states.
    case conditional = "UNet2DConditionModel"
    /// `UNet2DModel` (DDPM): pixel-space, spatial self-attention.
    case unconditional = "UNet2DModel"
}

public enum DownBlockType: String, Sendable {
    case down = "DownBlock2D"
    case crossAttnDown = "CrossAttnDownBlock2D"
    case attnDown = "AttnDownBlock2D"
}

public enum UpBlockType: String, Sendable {
    case up = "UpBlock2D"
    case crossAttnUp = "CrossAttnUpBlock2D"
    case attnUp = "AttnUpBlock2D"
}

/// A diffusers UNet config.json, validated against what this engine implements. Channel widths of
/// individual layers are read from the weights (pruned checkpoints); the config gives the structure
/// and the base widths (head sizes, channels per group).
public struct UNetConfig: Sendable, Equatable {
    public var family: UNetFamily
    public var sampleSize: Int?
    public var inChannels: Int
    public var outChannels: Int
    public var blockOutChannels: [Int]
    public var downBlockTypes: [DownBlockType]
    public var upBlockTypes: [UpBlockType]
    /// ResNet layers per down block (up blocks have one more), in down-block order.
    public var layersPerBlock: [Int]
    /// Attention heads per down block (conditional family; diffusers' legacy `attention_head_dim`, or
    /// `num_attention_heads`). Head size of block i is blockOutChannels[i] / heads[i].
    public var attentionHeads: [Int]
    /// Head size of the spatial attention (unconditional family); nil means one head over all channels.
    public var attentionHeadDim: Int?
    /// BasicTransformerBlocks per Transformer2DModel, in down-block order (the mid block takes the last).
    public var transformerLayersPerBlock: [Int]
    /// `reverse_transformer_layers_per_block`: the depths of the up blocks, in up-block order; nil means
    /// `transformerLayersPerBlock` reversed (diffusers' default).
    public var reverseTransformerLayersPerBlock: [Int]?
    public var crossAttentionDim: Int?
    public var normNumGroups: Int
    public var attnNormNumGroups: Int?
    public var normEps: Float
    public var flipSinToCos: Bool
    public var freqShift: Float
    public var useLinearProjection: Bool
    public var upcastAttention: Bool
    public var downsamplePadding: Int
    public var midBlockScaleFactor: Float
    /// Whether there is a mid block (`mid_block_type` not null).
    public var hasMidBlock: Bool
    /// Whether the unconditional mid block has its attention (`add_attention`).
    public var midBlockAttention: Bool
    /// `time_embedding_dim` when the config gives it; the weights (`time_embedding.linear_1`) must agree.
    public var timeEmbeddingDim: Int?
    /// SDXL's micro-conditioning (`addition_embed_type: text_time`), nil without it.
    public var textTime: TextTimeConfig?

    /// The transformer depth of up block `i` (up-block order).
    public func upTransformerLayers(_ i: Int) -> Int {
        reverseTransformerLayersPerBlock?[i] ?? transformerLayersPerBlock[blockOutChannels.count - 1 - i]
    }

    /// How much the down blocks shrink a side: every down block but the last halves it, so a sample's
    /// height and width must be multiples of this (and a latent's, times the VAE's own factor).
    public var downsampleFactor: Int { 1 << Swift.max(0, blockOutChannels.count - 1) }

    /// The largest channel count, head count or context width a config may declare (SD-XL's widest is
    /// 2,048; 10^9-wide layers would overflow the products sized from them).
    public static let maximumWidth = 1 << 16
    /// The most blocks, ResNet layers per block or transformer layers per block.
    public static let maximumDepth = 256
    /// The largest `sample_size` (a side in pixels or latents).
    public static let maximumSampleSize = 1 << 14

    /// Parses and validates a diffusers config.json. Keys with values this engine does not implement
    /// are refused with an error naming the key; unknown keys are ignored (later diffusers versions add
    /// keys whose defaults keep the architecture unchanged).
    public init(json: String) throws {
        guard case .object(let o)? = try? ConfigValue.parse(json) else {
            throw UNetError(.invalidConfig, "config.json", "not a JSON object")
        }
        try self.init(object: o)
    }

    init(object o: [String: ConfigValue]) throws {
        let reader = ConfigReader(o)
        if let name = try reader.string("_class_name") {
            guard let f = UNetFamily(rawValue: name) else {
                throw UNetError(.unsupportedConfig, "_class_name", "\(name) is not supported (UNet2DConditionModel or UNet2DModel)")
            }
            family = f
        } else {
            family = o["cross_attention_dim"] != nil ? .conditional : .unconditional
        }
        let conditional = family == .conditional
        let familyName = family.rawValue

        // Every number of the config, read by this engine or not, is bounded: an unknown key of 2^62
        // is as suspect as a known one, and later code may read it.
        for (key, value) in o.sorted(by: { $0.key < $1.key }) { try ConfigReader.refuseHuge(value, key) }
        // A list (height, width) is checked entry by entry; the first is the side used.
        let sides: [Int]
        if case .array? = o["sample_size"] { sides = try reader.ints("sample_size") ?? [] } else { sides = try reader.int("sample_size").map { [$0] } ?? [] }
        if let bad = sides.first(where: { !(1...Self.maximumSampleSize).contains($0) }) {
            throw UNetError(.invalidConfig, "sample_size", "\(bad) is out of range (1...\(Self.maximumSampleSize))")
        }
        if case .array? = o["sample_size"], sides.isEmpty { throw UNetError(.invalidConfig, "sample_size", "expected integers") }
        sampleSize = sides.first
        inChannels = try reader.int("in_channels", in: 1...Self.maximumWidth, default: conditional ? 4 : 3)!
        outChannels = try reader.int("out_channels", in: 1...Self.maximumWidth, default: conditional ? 4 : 3)!
        blockOutChannels = try reader.ints("block_out_channels")
            ?? (conditional ? [320, 640, 1280, 1280] : [224, 448, 672, 896])
        let n = blockOutChannels.count
        guard (1...Self.maximumDepth).contains(n), blockOutChannels.allSatisfy({ (1...Self.maximumWidth).contains($0) }) else {
            throw UNetError(.invalidConfig, "block_out_channels", "needs 1...\(Self.maximumDepth) widths, each in 1...\(Self.maximumWidth)")
        }
        let downNames = try reader.strings("down_block_types") ?? (conditional
            ? ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
            : ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"])
        let upNames = try reader.strings("up_block_types") ?? (conditional
            ? ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
            : ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"])
        let allowedDown: [DownBlockType] = conditional ? [.down, .crossAttnDown] : [.down, .attnDown]
        let allowedUp: [UpBlockType] = conditional ? [.up, .crossAttnUp] : [.up, .attnUp]
        downBlockTypes = try downNames.map { name in
            guard let t = DownBlockType(rawValue: name), allowedDown.contains(t) else {
                throw UNetError(.unsupportedConfig, "down_block_types", "\(name) is not supported for \(familyName) (\(allowedDown.map(\.rawValue).joined(separator: ", ")))")
            }
            return t
        }
        upBlockTypes = try upNames.map { name in
            guard let t = UpBlockType(rawValue: name), allowedUp.contains(t) else {
                throw UNetError(.unsupportedConfig, "up_block_types", "\(name) is not supported for \(familyName) (\(allowedUp.map(\.rawValue).joined(separator: ", ")))")
            }
            return t
        }
        guard downBlockTypes.count == n, upBlockTypes.count == n else {
            throw UNetError(.invalidConfig, "down_block_types", "down (\(downBlockTypes.count)) and up (\(upBlockTypes.count)) block counts must equal block_out_channels (\(n))")
        }
        layersPerBlock = try reader.perBlock("layers_per_block", count: n, default: 2)

        timeEmbeddingDim = try reader.int("time_embedding_dim", in: 1...Self.maximumWidth)
        normNumGroups = try reader.int("norm_num_groups", in: 1...Self.maximumWidth, default: 32)!
        attnNormNumGroups = try reader.int("attn_norm_num_groups", in: 1...Self.maximumWidth)
        // GroupNorm splits every block's channels into these groups (torch refuses a remainder).
        for (key, groups) in [("norm_num_groups", normNumGroups), ("attn_norm_num_groups", attnNormNumGroups ?? normNumGroups)] {
            if let c = blockOutChannels.first(where: { $0 % groups != 0 }) {
                throw UNetError(.invalidConfig, key, "\(c) channels do not split into \(groups) groups")
            }
        }
        normEps = Float(try reader.double("norm_eps") ?? 1e-5)
        guard normEps.isFinite, normEps > 0, normEps < 1 else {
            throw UNetError(.invalidConfig, "norm_eps", "must be a positive number below 1")
        }
        flipSinToCos = try reader.bool("flip_sin_to_cos") ?? true
        freqShift = Float(try reader.double("freq_shift") ?? 0)
        guard freqShift.isFinite, abs(freqShift) < 1e6 else { throw UNetError(.invalidConfig, "freq_shift", "must be a finite number") }
        downsamplePadding = try reader.int("downsample_padding") ?? 1
        guard downsamplePadding == 0 || downsamplePadding == 1 else {
            throw UNetError(.unsupportedConfig, "downsample_padding", "\(downsamplePadding) is not supported (0 or 1)")
        }
        midBlockScaleFactor = Float(try reader.double("mid_block_scale_factor") ?? 1)
        guard midBlockScaleFactor.isFinite, midBlockScaleFactor != 0 else {
            throw UNetError(.invalidConfig, "mid_block_scale_factor", "must be a finite, non-zero number")
        }

        if conditional {
            crossAttentionDim = try reader.int("cross_attention_dim", in: 1...Self.maximumWidth, default: 1280)
            // diffusers names the head count `attention_head_dim` in this family (issue 2011);
            // `num_attention_heads` wins when given.
            if let heads = o["num_attention_heads"], heads != .null {
                attentionHeads = try reader.perBlock("num_attention_heads", count: n, default: 8, maximum: Self.maximumWidth)
            } else {
                attentionHeads = try reader.perBlock("attention_head_dim", count: n, default: 8, maximum: Self.maximumWidth)
            }
            transformerLayersPerBlock = try reader.perBlock("transformer_layers_per_block", count: n, default: 1)
            reverseTransformerLayersPerBlock = o["reverse_transformer_layers_per_block", default: .null] == .null ? nil
                : try reader.perBlock("reverse_transformer_layers_per_block", count: n, default: 1)
            switch try reader.string("addition_embed_type") {
            case nil: textTime = nil
            case "text_time":
                guard let timeDim = try reader.int("addition_time_embed_dim", in: 1...Self.maximumWidth),
                      let inputDim = try reader.int("projection_class_embeddings_input_dim", in: 1...Self.maximumWidth) else {
                    throw UNetError(.invalidConfig, "addition_embed_type",
                                    "text_time needs addition_time_embed_dim and projection_class_embeddings_input_dim")
                }
                textTime = TextTimeConfig(timeEmbedDim: timeDim, inputDim: inputDim)
            case let other?:
                throw UNetError(.unsupportedConfig, "addition_embed_type", "\(other) is not supported (text_time or null)")
            }
            useLinearProjection = try reader.bool("use_linear_projection") ?? false
            upcastAttention = try reader.bool("upcast_attention") ?? false
            attentionHeadDim = nil
            let mid = try reader.string("mid_block_type")
            if let mid, mid != "UNetMidBlock2DCrossAttn" {
                throw UNetError(.unsupportedConfig, "mid_block_type", "\(mid) is not supported (UNetMidBlock2DCrossAttn or null)")
            }
            hasMidBlock = o["mid_block_type"] != .null
            midBlockAttention = true
            for (i, c) in blockOutChannels.enumerated() where c % attentionHeads[i] != 0 {
                throw UNetError(.invalidConfig, "attention_head_dim", "block \(i): \(c) channels do not split into \(attentionHeads[i]) heads")
            }
        } else {
            crossAttentionDim = nil
            attentionHeads = []
            transformerLayersPerBlock = []
            reverseTransformerLayersPerBlock = nil
            textTime = nil
            for key in ["addition_embed_type", "reverse_transformer_layers_per_block"] { try reader.requireNull(key) }
            useLinearProjection = false
            upcastAttention = false
            // An explicit null means one head over all channels; an absent key is diffusers' default 8.
            attentionHeadDim = o["attention_head_dim"] == nil ? 8 : try reader.int("attention_head_dim", in: 1...Self.maximumWidth)
            let mid = try reader.string("mid_block_type")
            if let mid, mid != "UNetMidBlock2D" {
                throw UNetError(.unsupportedConfig, "mid_block_type", "\(mid) is not supported (UNetMidBlock2D or null)")
            }
            hasMidBlock = o["mid_block_type"] != .null
            midBlockAttention = try reader.bool("add_attention") ?? true
            try reader.require("downsample_type", equals: "conv")
            try reader.require("upsample_type", equals: "conv")
        }

        // Keys whose non-default values change the computation in ways this engine does not implement.
        try reader.require("act_fn", equals: "silu")
        try reader.require("time_embedding_type", equals: "positional")
        try reader.require("resnet_time_scale_shift", equals: "default")
        try reader.requireFalse("center_input_sample")
        try reader.requireZero("dropout")
        for key in ["class_embed_type", "num_class_embeds", "encoder_hid_dim",
                    "encoder_hid_dim_type", "time_cond_proj_dim", "timestep_post_act", "time_embedding_act_fn",
                    "cross_attention_norm"] {
            try reader.requireNull(key)
        }
        // Without text_time these two only feed a class embedding, which is refused above.
        if textTime == nil {
            for key in ["projection_class_embeddings_input_dim", "addition_time_embed_dim"] { try reader.requireNull(key) }
        }
        for key in ["only_cross_attention", "dual_cross_attention", "resnet_skip_time_act",
                    "class_embeddings_concat", "mid_block_only_cross_attention"] {
            try reader.requireFalse(key)
        }
        try reader.require("attention_type", equals: "default")
        try reader.requireNumber("resnet_out_scale_factor", equals: 1)
        try reader.requireNumber("conv_in_kernel", equals: 3)
        try reader.requireNumber("conv_out_kernel", equals: 3)
    }
}

/// SDXL's added conditioning: each of the `time_ids` (original size, crop corner, target size) goes
/// through the sinusoidal projection `add_time_proj` of `timeEmbedDim` channels; the flattened result,
/// after the pooled text embedding `text_embeds`, goes through `add_embedding` (linear, SiLU, linear,
/// `inputDim` wide at its input), whose output is added to the time embedding.
public struct TextTimeConfig: Sendable, Equatable {
    /// `addition_time_embed_dim`: channels per time id.
    public var timeEmbedDim: Int
    /// `projection_class_embeddings_input_dim`: text_embeds width + time ids * `timeEmbedDim`.
    public var inputDim: Int
}

/// Typed access to a config dictionary; every failure names the key.
struct ConfigReader {
    let o: [String: ConfigValue]
    init(_ o: [String: ConfigValue]) { self.o = o }

    /// The key's value, nil when absent or null.
    private func value(_ key: String) -> ConfigValue? {
        guard let v = o[key], v != .null else { return nil }
        return v
    }

    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard case .string(let s) = v else { throw UNetError(.invalidConfig, key, "expected a string, got \(v)") }
        return s
    }

    func double(_ key: String) throws -> Double? {
        guard let v = value(key) else { return nil }
        guard case .number(let d) = v else { throw UNetError(.invalidConfig, key, "expected a number, got \(v)") }
        return d
    }

    func int(_ key: String) throws -> Int? {
        guard let d = try double(key) else { return nil }
        return try Self.integer(d, key)
    }

    /// `d` as an Int when it is a whole number of magnitude below 10^9 (every width, count and size a
    /// config can sensibly hold; larger values would overflow the products computed from them).
    static func integer(_ d: Double, _ key: String) throws -> Int {
        guard d.isFinite, d == d.rounded(), abs(d) < 1e9 else { throw UNetError(.invalidConfig, key, "expected an integer below 10^9, got \(ConfigValue.number(d))") }
        return Int(d)
    }

    /// The key as an int within `range` (absent: `fallback`).
    func int(_ key: String, in range: ClosedRange<Int>, default fallback: Int? = nil) throws -> Int? {
        guard let v = try int(key) ?? fallback else { return nil }
        guard range.contains(v) else { throw UNetError(.invalidConfig, key, "\(v) is out of range (\(range.lowerBound)...\(range.upperBound))") }
        return v
    }

    /// Refuses a whole number of magnitude 10^9 or more anywhere in `value` (lists and objects included).
    static func refuseHuge(_ value: ConfigValue, _ key: String) throws {
        switch value {
        case .number(let d) where !d.isFinite || (d == d.rounded() && abs(d) >= 1e9):
            throw UNetError(.invalidConfig, key, "expected an integer below 10^9, got \(value)")
        case .array(let items): for item in items { try refuseHuge(item, key) }
        case .object(let members): for (_, item) in members { try refuseHuge(item, key) }
        default: break
        }
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard case .bool(let b) = v else { throw UNetError(.invalidConfig, key, "expected true or false, got \(v)") }
        return b
    }

    func ints(_ key: String) throws -> [Int]? {
        guard let v = value(key) else { return nil }
        guard case .array(let list) = v else { throw UNetError(.invalidConfig, key, "expected a list of integers") }
        return try list.map { e in
            guard case .number(let d) = e else {
                if case .array = e { throw UNetError(.unsupportedConfig, key, "nested per-layer lists are not supported") }
                throw UNetError(.invalidConfig, key, "expected integers, got \(e)")
            }
            return try Self.integer(d, key)
        }
    }

    func strings(_ key: String) throws -> [String]? {
        guard let v = value(key) else { return nil }
        guard case .array(let list) = v else { throw UNetError(.invalidConfig, key, "expected a list of strings") }
        return try list.map { e in
            guard case .string(let s) = e else { throw UNetError(.invalidConfig, key, "expected strings, got \(e)") }
            return s
        }
    }

    /// An int for every block, or a list with one int per block, each in 1...`maximum`.
    func perBlock(_ key: String, count: Int, default d: Int, maximum: Int = UNetConfig.maximumDepth) throws -> [Int] {
        guard let v = value(key) else { return Array(repeating: d, count: count) }
        let values: [Int]
        if case .array = v {
            values = try ints(key) ?? []
            guard values.count == count else {
                throw UNetError(.invalidConfig, key, "has \(values.count) entries for \(count) blocks")
            }
        } else {
            values = Array(repeating: try int(key) ?? d, count: count)
        }
        guard values.allSatisfy({ (1...maximum).contains($0) }) else { throw UNetError(.invalidConfig, key, "values must be in 1...\(maximum)") }
        return values
    }

    func require(_ key: String, equals expected: String) throws {
        if let s = try string(key), s != expected {
            throw UNetError(.unsupportedConfig, key, "\(s) is not supported (only \(expected))")
        }
    }

    func requireNumber(_ key: String, equals expected: Double) throws {
        if let v = value(key), v != .number(expected) {
            throw UNetError(.unsupportedConfig, key, "\(v) is not supported (only \(ConfigValue.number(expected)))")
        }
    }

    func requireZero(_ key: String) throws { try requireNumber(key, equals: 0) }

    func requireFalse(_ key: String) throws {
        if let v = value(key), v != .bool(false) {
            throw UNetError(.unsupportedConfig, key, "\(v) is not supported (only false)")
        }
    }

    func requireNull(_ key: String) throws {
        if let v = value(key) {
            throw UNetError(.unsupportedConfig, key, "\(v) is not supported (only null)")
        }
    }
}
