import VAE

/// diffusers' AutoencoderKL halves as graphs, from the engine's `VAEConfig` (dense: the config fixes every
/// shape, and each tensor is checked against it).
///
/// `vae_decoder`: `latent_sample` [batch, latent, height, width] (already divided by the scaling factor,
/// as OnnxStableDiffusionPipeline does) -> `sample` [batch, out, 2^k height, 2^k width].
/// `vae_encoder`: `sample` [batch, in, height, width] -> `latent_sample`, the posterior's mean (its mode):
/// diffusers' own export draws a sample inside the graph, which makes the file nondeterministic; the mean
/// is what `dmsurgery vae encode` writes without `--sample`.
public enum VAEGraph {
    public enum Part: String, CaseIterable, Sendable {
        case encoder, decoder
    }

    /// With fixed shapes, height and width are the image's; the latent sides are those divided by 2^k.
    public static func build(_ part: Part, config c: VAEConfig, shapes: [String: [Int]], file: String, io: IOShape = .dynamic) throws -> Graph {
        var w = Walker(b: GraphBuilder(shapes: shapes, file: file), groups: c.normGroups)
        let widths = c.blockOutChannels, l = c.latentChannels, top = widths[widths.count - 1]
        let image = io.spatial(("height", "width")), latent = io.spatial(("latent_height", "latent_width"), dividedBy: c.downscale)
        switch part {
        case .decoder:
            var h = "latent_sample"
            if c.usePostQuantConv { h = try w.conv("post_quant_conv", h, in: l, out: l, kernel: 1) }
            h = try w.conv("decoder.conv_in", h, in: l, out: top, kernel: 3)
            h = try w.mid("decoder.mid_block", h, channels: top, attention: c.midBlockAttention)
            var channels = top
            for (i, width) in widths.reversed().enumerated() {
                for j in 0...c.layersPerBlock {
                    h = try w.resnet("decoder.up_blocks.\(i).resnets.\(j)", h, in: j == 0 ? channels : width, out: width)
                }
                channels = width
                if i < widths.count - 1 {
                    h = w.b.upsampleNearest2x(h, scope: "decoder.up_blocks.\(i).upsamplers.0")
                    h = try w.conv("decoder.up_blocks.\(i).upsamplers.0.conv", h, in: width, out: width, kernel: 3)
                }
            }
            h = w.b.silu(try w.norm("decoder.conv_norm_out", h, channels: widths[0]), scope: "decoder.conv_norm_out")
            h = try w.conv("decoder.conv_out", h, in: widths[0], out: c.outChannels, kernel: 3)
            w.b.rename(output: h, to: "sample")
            return w.b.graph(name: "vae_decoder",
                             inputs: [ValueInfo(name: "latent_sample", type: .float32, shape: [io.batch, .fixed(l)] + latent)],
                             outputs: [ValueInfo(name: "sample", type: .float32, shape: [io.batch, .fixed(c.outChannels)] + image)])
        case .encoder:
            var h = try w.conv("encoder.conv_in", "sample", in: c.inChannels, out: widths[0], kernel: 3)
            var channels = widths[0]
            for (i, width) in widths.enumerated() {
                for j in 0..<c.layersPerBlock {
                    h = try w.resnet("encoder.down_blocks.\(i).resnets.\(j)", h, in: j == 0 ? channels : width, out: width)
                }
                channels = width
                if i < widths.count - 1 {
                    h = try w.conv("encoder.down_blocks.\(i).downsamplers.0.conv", h, in: width, out: width, kernel: 3, stride: 2,
                                   padBottomRight: true)
                }
            }
            h = try w.mid("encoder.mid_block", h, channels: top, attention: c.midBlockAttention)
            h = w.b.silu(try w.norm("encoder.conv_norm_out", h, channels: top), scope: "encoder.conv_norm_out")
            h = try w.conv("encoder.conv_out", h, in: top, out: 2 * l, kernel: 3)
            if c.useQuantConv { h = try w.conv("quant_conv", h, in: 2 * l, out: 2 * l, kernel: 1) }
            // The first `latent` channels are the mean; the rest the log-variance.
            let mean = w.b.op("Slice", [h, w.b.int64s([0]), w.b.int64s([l]), w.b.int64s([1])], scope: "latent_dist")
            w.b.rename(output: mean, to: "latent_sample")
            return w.b.graph(name: "vae_encoder",
                             inputs: [ValueInfo(name: "sample", type: .float32, shape: [io.batch, .fixed(c.inChannels)] + image)],
                             outputs: [ValueInfo(name: "latent_sample", type: .float32, shape: [io.batch, .fixed(l)] + latent)])
        }
    }

    /// The VAE's layers (VAELayers.swift): every GroupNorm has eps 1e-6 and the config's group count.
    private struct Walker {
        var b: GraphBuilder
        let groups: Int

        mutating func conv(_ name: String, _ x: String, in cin: Int, out cout: Int, kernel: Int, stride: Int = 1,
                           padBottomRight: Bool = false) throws -> String {
            try b.conv(x, weight: name + ".weight", bias: name + ".bias", in: cin, out: cout, kernel: kernel, stride: stride,
                       padding: padBottomRight ? 0 : kernel / 2, padBottomRight: padBottomRight, scope: name)
        }

        mutating func norm(_ name: String, _ x: String, channels: Int) throws -> String {
            try b.groupNorm(x, weight: name + ".weight", bias: name + ".bias", channels: channels, groups: groups, eps: 1e-6, scope: name)
        }

        mutating func resnet(_ name: String, _ x: String, in cin: Int, out cout: Int) throws -> String {
            var h = try conv(name + ".conv1", b.silu(try norm(name + ".norm1", x, channels: cin), scope: name), in: cin, out: cout, kernel: 3)
            h = try conv(name + ".conv2", b.silu(try norm(name + ".norm2", h, channels: cout), scope: name), in: cout, out: cout, kernel: 3)
            let skip = cin != cout ? try conv(name + ".conv_shortcut", x, in: cin, out: cout, kernel: 1) : x
            return b.op("Add", [h, skip], scope: name)
        }

        mutating func mid(_ name: String, _ x: String, channels c: Int, attention: Bool) throws -> String {
            var h = try resnet(name + ".resnets.0", x, in: c, out: c)
            if attention {
                let a = name + ".attentions.0"
                let tokens = b.toTokens(try norm(a + ".group_norm", h, channels: c), scope: a)
                let q = try b.linear(tokens, weight: a + ".to_q.weight", bias: a + ".to_q.bias", in: c, out: c, scope: a + ".to_q")
                let k = try b.linear(tokens, weight: a + ".to_k.weight", bias: a + ".to_k.bias", in: c, out: c, scope: a + ".to_k")
                let v = try b.linear(tokens, weight: a + ".to_v.weight", bias: a + ".to_v.bias", in: c, out: c, scope: a + ".to_v")
                let o = try b.linear(b.attention(q: q, k: k, v: v, heads: 1, headDim: c, scope: a), weight: a + ".to_out.0.weight",
                                     bias: a + ".to_out.0.bias", in: c, out: c, scope: a + ".to_out.0")
                h = b.op("Add", [b.fromTokens(o, like: h, channels: c, scope: a), h], scope: a)
            }
            return try resnet(name + ".resnets.1", h, in: c, out: c)
        }
    }
}
