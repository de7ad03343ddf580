import CLIP

/// An AutoencoderKL `config.json` (diffusers 0.42), every field range-checked.
public struct VAEConfig: Sendable, Equatable {
    public var inChannels: Int
    public var outChannels: Int
    public var blockOutChannels: [Int]
    public var layersPerBlock: Int
    public var latentChannels: Int
    public var normGroups: Int
    public var scalingFactor: Float
    /// SD3/Flux-style latent shift; nil (SD 1.x, 2.x, XL) means 0.
    public var shiftFactor: Float?
    public var useQuantConv: Bool
    public var usePostQuantConv: Bool
    public var midBlockAttention: Bool

    public init(json text: String, file: String) throws(CLIPError) {
        let c = try ConfigReader(text: text, file: file)
        inChannels = try c.int("in_channels", in: 1...64, default: 3)
        outChannels = try c.int("out_channels", in: 1...64, default: 3)
        blockOutChannels = try c.ints("block_out_channels", in: 1...8192, default: [64])
        guard (1...8).contains(blockOutChannels.count) else { throw c.fail("block_out_channels", "must list 1...8 widths") }
        let downTypes = try c.strings("down_block_types", oneOf: ["DownEncoderBlock2D"], default: ["DownEncoderBlock2D"])
        let upTypes = try c.strings("up_block_types", oneOf: ["UpDecoderBlock2D"], default: ["UpDecoderBlock2D"])
        guard downTypes.count == blockOutChannels.count, upTypes.count == blockOutChannels.count else {
            throw c.fail("block_out_channels", "down_block_types, up_block_types and block_out_channels must have one entry per block")
        }
        layersPerBlock = try c.int("layers_per_block", in: 1...16, default: 1)
        latentChannels = try c.int("latent_channels", in: 1...256, default: 4)
        normGroups = try c.int("norm_num_groups", in: 1...1024, default: 32)
        _ = try c.string("act_fn", oneOf: ["silu"], default: "silu")
        scalingFactor = Float(try c.double("scaling_factor", in: 1e-6...1e6, default: 0.18215))
        shiftFactor = try c.optionalDouble("shift_factor", in: -1e6...1e6).map(Float.init)
        useQuantConv = try c.bool("use_quant_conv", default: true)
        usePostQuantConv = try c.bool("use_post_quant_conv", default: true)
        midBlockAttention = try c.bool("mid_block_add_attention", default: true)
        for key in ["latents_mean", "latents_std"] {
            if let v = c.json[key], v != .null {
                throw CLIPError(.modelUnsupported, "per-channel latent statistics are not supported", file: file, tensor: key)
            }
        }
        for width in blockOutChannels where width % normGroups != 0 {
            throw c.fail("norm_num_groups", "block width \(width) is not divisible by \(normGroups) groups")
        }
    }

    /// Image side / latent side.
    public var downscale: Int { 1 << (blockOutChannels.count - 1) }
}
