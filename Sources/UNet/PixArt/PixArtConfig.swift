import Foundation

/// A diffusers `PixArtTransformer2DModel` config.json (PixArt-Alpha/Sigma's diffusion transformer),
/// validated against what this engine implements. Per-block widths (attention heads, FFN width) are
/// read from the weights, so width-pruned checkpoints load; the config gives the structure and the
/// base widths (head size, the residual width heads x head size).
public struct PixArtConfig: Sendable, Equatable {
    /// The `_class_name` this config describes.
    public static let className = "PixArtTransformer2DModel"

    public var attentionHeads: Int
    public var attentionHeadDim: Int
    public var inChannels: Int
    /// `out_channels` (null: in_channels); PixArt's learned sigma doubles it.
    public var outChannels: Int
    public var numLayers: Int
    public var sampleSize: Int
    public var patchSize: Int
    /// The width of the keys cross-attention reads: the projected caption's when `captionChannels` is set.
    public var crossAttentionDim: Int
    /// Width of the caption embeddings `caption_projection` takes (T5-XXL's 4096); nil: no projection,
    /// `encoder_hidden_states` go to cross-attention as they are.
    public var captionChannels: Int?
    /// PatchEmbed's `interpolation_scale` (null in the file: max(sample_size / 64, 1)).
    public var interpolationScale: Double
    public var normEps: Float

    /// The residual stream's width (`inner_dim`).
    public var innerDim: Int { attentionHeads * attentionHeadDim }
    /// PatchEmbed's `base_size`: the grid side, in patches, at which positions are not rescaled.
    public var baseSize: Int { sampleSize / patchSize }
    /// Width of the `encoder_hidden_states` the model takes.
    public var contextDim: Int { captionChannels ?? crossAttentionDim }

    /// Whether `json` names this class (`_class_name`), so a caller can route a folder before parsing.
    public static func describes(json: String) -> Bool {
        guard case .object(let o)? = try? ConfigValue.parse(json), case .string(let name)? = o["_class_name"] else {
            return false
        }
        return name == className
    }

    public init(json: String) throws {
        guard case .object(let o)? = try? ConfigValue.parse(json) else {
            throw UNetError(.invalidConfig, "config.json", "not a JSON object")
        }
        try self.init(object: o)
    }

    init(object o: [String: ConfigValue]) throws {
        let reader = ConfigReader(o)
        for (key, value) in o.sorted(by: { $0.key < $1.key }) { try ConfigReader.refuseHuge(value, key) }
        try reader.require("_class_name", equals: Self.className)
        // The variants diffusers' class builds that are not PixArt's DiT are refused by name.
        try reader.require("norm_type", equals: "ada_norm_single")
        try reader.require("activation_fn", equals: "gelu-approximate")
        try reader.require("attention_type", equals: "default")
        try reader.requireFalse("norm_elementwise_affine")
        try reader.requireZero("dropout")
        if o["num_embeds_ada_norm"] == .null {
            throw UNetError(.invalidConfig, "num_embeds_ada_norm", "null (ada_norm_single needs it; diffusers refuses it too)")
        }
        let width = 1...UNetConfig.maximumWidth
        attentionHeads = try reader.int("num_attention_heads", in: width, default: 16)!
        attentionHeadDim = try reader.int("attention_head_dim", in: width, default: 72)!
        inChannels = try reader.int("in_channels", in: width, default: 4)!
        outChannels = try reader.int("out_channels", in: width, default: nil) ?? (o["out_channels"] == nil ? 8 : inChannels)
        numLayers = try reader.int("num_layers", in: 1...UNetConfig.maximumDepth, default: 28)!
        sampleSize = try reader.int("sample_size", in: 1...UNetConfig.maximumSampleSize, default: 128)!
        patchSize = try reader.int("patch_size", in: 1...64, default: 2)!
        captionChannels = try reader.int("caption_channels", in: width)
        normEps = Float(try reader.double("norm_eps") ?? 1e-6)
        guard normEps.isFinite, normEps > 0, normEps < 1 else {
            throw UNetError(.invalidConfig, "norm_eps", "must be in (0, 1)")
        }
        guard attentionHeads * attentionHeadDim <= UNetConfig.maximumWidth else {
            throw UNetError(.invalidConfig, "num_attention_heads", "\(attentionHeads) heads of \(attentionHeadDim) exceed the widest layer (\(UNetConfig.maximumWidth))")
        }
        let inner = attentionHeads * attentionHeadDim
        // get_2d_sincos_pos_embed gives half the width to each axis and half of that to sin and cos.
        guard inner % 4 == 0 else {
            throw UNetError(.invalidConfig, "attention_head_dim", "inner width \(attentionHeads) x \(attentionHeadDim) = \(inner) is not a multiple of 4 (the 2-D sin-cos position embedding needs it)")
        }
        guard sampleSize >= patchSize else {
            throw UNetError(.invalidConfig, "sample_size", "\(sampleSize) is smaller than patch_size \(patchSize)")
        }
        guard let cross = try reader.int("cross_attention_dim", in: width) else {
            throw UNetError(.unsupportedConfig, "cross_attention_dim", "null (a PixArt transformer without cross-attention) is not supported")
        }
        crossAttentionDim = cross
        if captionChannels != nil, cross != inner {
            throw UNetError(.invalidConfig, "cross_attention_dim", "\(cross) contradicts the caption projection's output width \(inner) (heads x head_dim)")
        }
        if let scale = try reader.double("interpolation_scale") {
            guard scale.isFinite, scale > 0, scale < 1e6 else {
                throw UNetError(.invalidConfig, "interpolation_scale", "must be a positive finite number")
            }
            interpolationScale = scale
        } else {
            interpolationScale = Double(max(sampleSize / 64, 1))
        }
        // diffusers turns the resolution and aspect-ratio embedding on by itself at sample_size 128.
        let additional = try reader.bool("use_additional_conditions") ?? (sampleSize == 128)
        if additional {
            throw UNetError(.unsupportedConfig, "use_additional_conditions",
                            "true (PixArt-Alpha's resolution and aspect-ratio embedding) is not supported; PixArt-Sigma's configs set it false")
        }
    }
}
