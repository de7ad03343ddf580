import CLIP
import Foundation
import TensorFormats
import TensorMath

/// diffusers' `AutoencoderKL` (0.42), forward only: the encoder's Gaussian posterior and the decoder.
///
/// Encoder: conv_in, per block `layers_per_block` resnets and (all but the last) a stride-2 downsample,
/// mid block, GroupNorm + SiLU + conv_out to 2 x latent channels, `quant_conv`; mean and log-variance are
/// the two halves, log-variance clamped to [-30, 20]. Decoder: `post_quant_conv`, conv_in, mid block, per
/// block (widths reversed) `layers_per_block + 1` resnets and (all but the last) nearest-2x upsample + conv,
/// GroupNorm + SiLU + conv_out.
///
/// Images run one at a time, so memory is that of one image whatever the batch: at 512x512 with SD's
/// widths the largest activation is 256 x 512 x 512 floats (256 MB), about 1.5 GB at peak; no tiling.
public struct AutoencoderKL: Sendable {
    public let config: VAEConfig
    let encoderIn: Conv
    let encoderBlocks: [(resnets: [VAEResnet], downsample: Conv?)]
    let encoderMid: VAEMidBlock
    let encoderNorm: GroupNorm
    let encoderOut: Conv
    let quantConv: Conv?
    let postQuantConv: Conv?
    let decoderIn: Conv
    let decoderMid: VAEMidBlock
    let decoderBlocks: [(resnets: [VAEResnet], upsample: Conv?)]
    let decoderNorm: GroupNorm
    let decoderOut: Conv

    public init(config: VAEConfig, weights: inout WeightTable) throws(CLIPError) {
        self.config = config
        let widths = config.blockOutChannels, g = config.normGroups, l = config.latentChannels
        encoderIn = try Conv("encoder.conv_in", in: config.inChannels, out: widths[0], kernel: 3, weights: &weights)
        var blocks: [(resnets: [VAEResnet], downsample: Conv?)] = []
        var channels = widths[0]
        for (i, width) in widths.enumerated() {
            var resnets: [VAEResnet] = []
            for j in 0..<config.layersPerBlock {
                resnets.append(try VAEResnet("encoder.down_blocks.\(i).resnets.\(j)", in: j == 0 ? channels : width, out: width, groups: g, weights: &weights))
            }
            channels = width
            let down = i < widths.count - 1 ? try Conv("encoder.down_blocks.\(i).downsamplers.0.conv", in: width, out: width, kernel: 3, weights: &weights) : nil
            blocks.append((resnets, down))
        }
        encoderBlocks = blocks
        let top = widths[widths.count - 1]
        encoderMid = try VAEMidBlock("encoder.mid_block", channels: top, groups: g, attention: config.midBlockAttention, weights: &weights)
        encoderNorm = try GroupNorm("encoder.conv_norm_out", channels: top, groups: g, weights: &weights)
        encoderOut = try Conv("encoder.conv_out", in: top, out: 2 * l, kernel: 3, weights: &weights)
        quantConv = config.useQuantConv ? try Conv("quant_conv", in: 2 * l, out: 2 * l, kernel: 1, weights: &weights) : nil
        postQuantConv = config.usePostQuantConv ? try Conv("post_quant_conv", in: l, out: l, kernel: 1, weights: &weights) : nil
        decoderIn = try Conv("decoder.conv_in", in: l, out: top, kernel: 3, weights: &weights)
        decoderMid = try VAEMidBlock("decoder.mid_block", channels: top, groups: g, attention: config.midBlockAttention, weights: &weights)
        var up: [(resnets: [VAEResnet], upsample: Conv?)] = []
        channels = top
        for (i, width) in widths.reversed().enumerated() {
            var resnets: [VAEResnet] = []
            for j in 0...config.layersPerBlock {
                resnets.append(try VAEResnet("decoder.up_blocks.\(i).resnets.\(j)", in: j == 0 ? channels : width, out: width, groups: g, weights: &weights))
            }
            channels = width
            let upsample = i < widths.count - 1 ? try Conv("decoder.up_blocks.\(i).upsamplers.0.conv", in: width, out: width, kernel: 3, weights: &weights) : nil
            up.append((resnets, upsample))
        }
        decoderBlocks = up
        decoderNorm = try GroupNorm("decoder.conv_norm_out", channels: widths[0], groups: g, weights: &weights)
        decoderOut = try Conv("decoder.conv_out", in: widths[0], out: config.outChannels, kernel: 3, weights: &weights)
        try weights.checkAllUsed()
    }

    /// Loads a VAE folder (`config.json` + `diffusion_pytorch_model.safetensors`), e.g. a pipeline's `vae/`.
    public init(path: String) throws {
        let checkpoint = try Checkpoint.open(path)
        guard let json = checkpoint.configJSON else {
            throw CLIPError(.modelBadConfig, "no config.json beside the weights", file: path)
        }
        let config = try VAEConfig(json: json, file: path + "/config.json")
        var weights = try WeightTable(checkpoint: checkpoint)
        try self.init(config: config, weights: &weights)
    }

    /// The posterior of images [N, in_channels, H, W] (H and W multiples of the downscale): mean and std,
    /// each [N, latent_channels, H/f, W/f], unscaled.
    public func encode(_ images: Tensor) throws(CLIPError) -> (mean: Tensor, std: Tensor) {
        try check(images, channels: config.inChannels, multiple: config.downscale, name: "images")
        try checkMemory(height: images.shape[2], width: images.shape[3], option: "the image size")
        var means: [Float] = [], stds: [Float] = []
        var shape: [Int] = []
        for image in split(images) {
            var h = encoderIn(image)
            for block in encoderBlocks {
                for resnet in block.resnets { h = resnet(h) }
                if let down = block.downsample { h = down.downsample(h) }
            }
            h = encoderOut(encoderNorm(encoderMid(h), silu: true))
            if let quantConv { h = quantConv(h) }
            let plane = h.count / 2
            means += h.data[0..<plane]
            stds += h.data[plane...].map { exp(0.5 * min(max($0, -30), 20)) }
            shape = [images.shape[0], config.latentChannels, h.shape[2], h.shape[3]]
        }
        return (Tensor(shape: shape, data: means), Tensor(shape: shape, data: stds))
    }

    /// Images [N, out_channels, H*f, W*f] from unscaled latents [N, latent_channels, H, W].
    public func decode(_ latents: Tensor) throws(CLIPError) -> Tensor {
        try check(latents, channels: config.latentChannels, multiple: 1, name: "latents")
        let (height, width) = latents.shape[2].multipliedReportingOverflow(by: config.downscale).overflow
            || latents.shape[3].multipliedReportingOverflow(by: config.downscale).overflow
            ? (Int.max, Int.max) : (latents.shape[2] * config.downscale, latents.shape[3] * config.downscale)
        try checkMemory(height: height, width: width, option: "--size")
        var data: [Float] = []
        var shape: [Int] = []
        for latent in split(latents) {
            var h = postQuantConv.map { $0(latent) } ?? latent
            h = decoderMid(decoderIn(h))
            for block in decoderBlocks {
                for resnet in block.resnets { h = resnet(h) }
                if let upsample = block.upsample { h = upsample(NN.upsampleNearest2x(h)) }
            }
            h = decoderOut(decoderNorm(h, silu: true))
            data += h.data
            shape = [latents.shape[0]] + h.shape.dropFirst()
        }
        return Tensor(shape: shape, data: data)
    }

    /// Scaled latents, the form pipelines and the UNet use: (z - shift_factor) * scaling_factor, z being
    /// the posterior mean, or with `noise` (standard normal, the shape of the mean) mean + std * noise.
    public func latents(of images: Tensor, noise: Tensor? = nil) throws(CLIPError) -> Tensor {
        let (mean, std) = try encode(images)
        if let noise, noise.shape != mean.shape {
            throw CLIPError(.modelBadInput, "noise \(noise.shape) does not match latents \(mean.shape)")
        }
        let shift = config.shiftFactor ?? 0, scale = config.scalingFactor
        var out = mean
        for i in out.data.indices {
            let z = mean.data[i] + (noise.map { std.data[i] * $0.data[i] } ?? 0)
            out.data[i] = (z - shift) * scale
        }
        return out
    }

    /// Images from scaled latents: decode(latents / scaling_factor + shift_factor).
    public func images(fromLatents latents: Tensor) throws(CLIPError) -> Tensor {
        let shift = config.shiftFactor ?? 0, scale = config.scalingFactor
        var z = latents
        for i in z.data.indices { z.data[i] = latents.data[i] / scale + shift }
        return try decode(z)
    }

    /// Feature maps of the widest full-resolution level alive at once while one image is encoded or
    /// decoded: a ResNet's input, its normalised and convolved maps, a 2x upsampled map and the
    /// Winograd transforms of a convolution's input and output (2.25 maps each).
    static let workingMaps = 12

    /// Refuses (`too-large`) an image whose largest level cannot fit before anything is allocated: a
    /// decoder at 1024 pixels holds gigabytes, which the UNet's estimate (at latent size) never sees.
    private func checkMemory(height: Int, width: Int, option: String) throws(CLIPError) {
        var largest: Int? = 0
        for (i, c) in config.blockOutChannels.enumerated() {
            let level = MemoryBudget.product([c, height >> i, width >> i, Self.workingMaps, MemoryLayout<Float>.size])
            largest = largest.flatMap { a in level.map { max(a, $0) } }
        }
        do { try MemoryBudget.check(largest, for: "the VAE at \(width)x\(height) pixels", option: option) } catch {
            throw CLIPError(error.code, error.message)
        }
    }

    private func check(_ x: Tensor, channels: Int, multiple: Int, name: String) throws(CLIPError) {
        guard x.rank == 4, x.shape[0] >= 1, x.shape[1] == channels, x.shape[2] >= 1, x.shape[3] >= 1 else {
            throw CLIPError(.modelBadInput, "\(name) \(x.shape) must be [N, \(channels), H, W]", tensor: name)
        }
        guard x.shape[2] % multiple == 0, x.shape[3] % multiple == 0 else {
            throw CLIPError(.modelBadInput, "\(name) sides \(x.shape[2])x\(x.shape[3]) must be multiples of \(multiple)", tensor: name)
        }
        // One image's decoded activations must fit: widest block x full resolution, a few copies.
        let side = x.shape[2] * x.shape[3] * (name == "latents" ? config.downscale * config.downscale : 1)
        let (product, overflow) = side.multipliedReportingOverflow(by: config.blockOutChannels.max()! * 6 * 4)
        guard !overflow, product <= 16 << 30 else {
            throw CLIPError(.modelBadInput, "\(name) \(x.shape) would need more than 16 GB of activations per image", tensor: name)
        }
    }

    private func split(_ x: Tensor) -> [Tensor] {
        let n = x.shape[0], per = x.count / n
        return (0..<n).map { Tensor(shape: [1] + x.shape.dropFirst(), data: Array(x.data[($0 * per)..<(($0 + 1) * per)])) }
    }
}
