/// The name mapping between original (LDM/CompVis) single-file Stable Diffusion checkpoints and diffusers
/// pipeline folders, as data: every rename `convert --layout diffusers|ldm` applies is a row here
/// (formats/ldm.md prints the same table). Rows follow diffusers 0.42.1 `loaders/single_file_utils.py`
/// (`DIFFUSERS_TO_LDM_MAPPING`, `convert_ldm_unet_checkpoint`, `convert_ldm_vae_checkpoint`,
/// `convert_open_clip_checkpoint`).
///
/// A name is mapped in two steps: a block rule (`LDMBlockRule`, made from the component's config by
/// `LDMLayout`) matches the longest prefix and swaps it, then the block's local table (rows below) swaps
/// the first matching sub-prefix of the rest; a rest no row matches is kept as it is (resnet and
/// transformer parameters named alike in both layouts).

/// How a tensor's bytes change between the layouts. Nothing is ever recomputed: values are copied.
public enum LDMTransform: Sendable, Equatable {
    /// Same bytes, same shape.
    case copy
    /// A 1x1 convolution weight `[O, I, 1, 1]` (LDM) is the linear weight `[O, I]` (diffusers): same bytes.
    case squeezeConv
    /// OpenCLIP's `text_projection` `[width, dim]` is diffusers' `text_projection.weight` `[dim, width]`.
    case transpose
    /// OpenCLIP's fused `in_proj` is q, k and v stacked along rows: one LDM tensor, three diffusers
    /// tensors (`{}` in the diffusers name stands for `q`, `k`, `v`), split and joined by byte ranges.
    case fusedQKV
}

/// One row: a sub-name in the LDM layout and its diffusers counterpart.
public struct LDMNameRow: Sendable, Equatable {
    public var ldm: String
    public var diffusers: String
    public var transform: LDMTransform

    init(_ ldm: String, _ diffusers: String, _ transform: LDMTransform = .copy) {
        self.ldm = ldm
        self.diffusers = diffusers
        self.transform = transform
    }
}

public enum LDMKeyTable {
    // MARK: UNet (`model.diffusion_model.`)

    /// Whole-model layers outside the blocks.
    public static let unetTop: [LDMNameRow] = [
        LDMNameRow("time_embed.0.", "time_embedding.linear_1."),
        LDMNameRow("time_embed.2.", "time_embedding.linear_2."),
        LDMNameRow("input_blocks.0.0.", "conv_in."),
        LDMNameRow("out.0.", "conv_norm_out."),
        LDMNameRow("out.2.", "conv_out."),
    ]

    /// SDXL's addition embedding (`addition_embed_type: text_time`).
    public static let unetAddition: [LDMNameRow] = [
        LDMNameRow("label_emb.0.0.", "add_embedding.linear_1."),
        LDMNameRow("label_emb.0.2.", "add_embedding.linear_2."),
    ]

    /// Inside a UNet ResBlock (`input_blocks.i.0.`, `middle_block.0.`, `output_blocks.i.0.`).
    public static let unetResnet: [LDMNameRow] = [
        LDMNameRow("in_layers.0.", "norm1."),
        LDMNameRow("in_layers.2.", "conv1."),
        LDMNameRow("out_layers.0.", "norm2."),
        LDMNameRow("out_layers.3.", "conv2."),
        LDMNameRow("emb_layers.1.", "time_emb_proj."),
        LDMNameRow("skip_connection.", "conv_shortcut."),
    ]

    /// Inside a SpatialTransformer: names are the same in both layouts.
    public static let unetAttention: [LDMNameRow] = []

    /// A down- or upsampler's convolution (`input_blocks.i.0.op.`, `output_blocks.i.k.conv.`).
    public static let sampler: [LDMNameRow] = []

    // MARK: VAE (`first_stage_model.`)

    public static let vaeTop: [LDMNameRow] = [
        LDMNameRow("encoder.conv_in.", "encoder.conv_in."),
        LDMNameRow("encoder.conv_out.", "encoder.conv_out."),
        LDMNameRow("encoder.norm_out.", "encoder.conv_norm_out."),
        LDMNameRow("decoder.conv_in.", "decoder.conv_in."),
        LDMNameRow("decoder.conv_out.", "decoder.conv_out."),
        LDMNameRow("decoder.norm_out.", "decoder.conv_norm_out."),
        LDMNameRow("quant_conv.", "quant_conv."),
        LDMNameRow("post_quant_conv.", "post_quant_conv."),
    ]

    /// Inside a VAE ResnetBlock (`norm1`, `conv1`, `norm2`, `conv2` named alike).
    public static let vaeResnet: [LDMNameRow] = [
        LDMNameRow("nin_shortcut.", "conv_shortcut."),
    ]

    /// Inside the VAE's mid-block attention: q, k, v and the output projection are 1x1 convolutions in LDM.
    public static let vaeAttention: [LDMNameRow] = [
        LDMNameRow("norm.", "group_norm."),
        LDMNameRow("q.weight", "to_q.weight", .squeezeConv),
        LDMNameRow("q.bias", "to_q.bias"),
        LDMNameRow("k.weight", "to_k.weight", .squeezeConv),
        LDMNameRow("k.bias", "to_k.bias"),
        LDMNameRow("v.weight", "to_v.weight", .squeezeConv),
        LDMNameRow("v.bias", "to_v.bias"),
        LDMNameRow("proj_out.weight", "to_out.0.weight", .squeezeConv),
        LDMNameRow("proj_out.bias", "to_out.0.bias"),
    ]

    // MARK: Text encoders

    /// OpenCLIP outside its layers (SD2 `cond_stage_model.model.`, SDXL `conditioner.embedders.1.model.`),
    /// to transformers' CLIPTextModel names under `text_model.`.
    public static let openCLIPTop: [LDMNameRow] = [
        LDMNameRow("token_embedding.weight", "embeddings.token_embedding.weight"),
        LDMNameRow("positional_embedding", "embeddings.position_embedding.weight"),
        LDMNameRow("ln_final.", "final_layer_norm."),
    ]

    /// The projection of the pooled output (SDXL's second encoder only; SD2's is not used by diffusers).
    public static let openCLIPProjection = LDMNameRow("text_projection", "text_projection.weight", .transpose)

    /// Inside one OpenCLIP residual block (`transformer.resblocks.N.` = `encoder.layers.N.`).
    public static let openCLIPLayer: [LDMNameRow] = [
        LDMNameRow("ln_1.", "layer_norm1."),
        LDMNameRow("ln_2.", "layer_norm2."),
        LDMNameRow("mlp.c_fc.", "mlp.fc1."),
        LDMNameRow("mlp.c_proj.", "mlp.fc2."),
        LDMNameRow("attn.out_proj.", "self_attn.out_proj."),
        LDMNameRow("attn.in_proj_weight", "self_attn.{}_proj.weight", .fusedQKV),
        LDMNameRow("attn.in_proj_bias", "self_attn.{}_proj.bias", .fusedQKV),
    ]

    /// Component prefixes in the single file.
    public static let unetPrefix = "model.diffusion_model."
    public static let vaePrefix = "first_stage_model."
    public static let sd1TextPrefix = "cond_stage_model.transformer.text_model."
    public static let sd2TextPrefix = "cond_stage_model.model."
    public static let sdxlTextPrefix = "conditioner.embedders.0.transformer.text_model."
    public static let sdxlText2Prefix = "conditioner.embedders.1.model."
    /// EMA copies: `model_ema.` + the UNet name after `model.` with its dots removed.
    public static let emaPrefix = "model_ema."

    /// Names diffusers leaves out of SD2's text encoder (`SD_2_TEXT_ENCODER_KEYS_TO_IGNORE`): the last of
    /// 24 layers (SD2 conditions on the penultimate one) and the unused projection.
    public static let sd2Ignored: [String] = ["transformer.resblocks.23.", "text_projection"]

    /// LDM training state that no diffusers component holds (the noise schedule's buffers, EMA counters,
    /// CLIP's logit scale and position ids): skipped, and counted in the report.
    public static let trainingStatePrefixes: [String] = [
        "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
        "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
        "model_ema.", "logvar", "lvlb_weights", "cond_stage_model.model.logit_scale", "cond_stage_model.model.attn_mask",
        "conditioner.embedders.1.model.logit_scale", "conditioner.embedders.1.model.attn_mask",
    ]
}

/// A block of a component: names under `ldm` in the single file are names under `diffusers` in the
/// component's weights, with `rows` applied to the rest.
public struct LDMBlockRule: Sendable {
    public var ldm: String
    public var diffusers: String
    public var rows: [LDMNameRow]

    init(_ ldm: String, _ diffusers: String, _ rows: [LDMNameRow]) {
        self.ldm = ldm
        self.diffusers = diffusers
        self.rows = rows
    }
}
