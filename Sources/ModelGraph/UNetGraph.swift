import Foundation
import UNet

/// A diffusers UNet2DConditionModel (or UNet2DModel) as a graph, built from the engine's `UNetStructure` (so every width
/// is the checkpoint's own: width- and depth-pruned students export as they are).
///
/// Inputs and outputs are those diffusers' OnnxStableDiffusionPipeline feeds: `sample` [batch, C, height,
/// width] float32, `timestep` [timestep_batch] float32 (one value is broadcast to the batch, as the
/// pipeline passes shape [1]), `encoder_hidden_states` [batch, sequence, D] float32 -> `out_sample`
/// (a UNet2DModel has no `encoder_hidden_states`). An SDXL UNet (`addition_embed_type: text_time`) also
/// takes `text_embeds` [batch, P] and `time_ids` [batch, 6] float32, the names and shapes of optimum's
/// SDXL UNet export that diffusers' ORTStableDiffusionXLPipeline feeds (P = the add_embedding input
/// width less six time ids of `addition_time_embed_dim`).
public enum UNetGraph {
    /// With fixed shapes, the side sizes are the sample's (latent) sides and `sequence` is fixed too.
    public static func build(_ s: UNetStructure, shapes: [String: [Int]], file: String, io: IOShape = .dynamic,
                             sequence: Int = 77) throws -> Graph {
        var pooledWidth: Int?
        if let spec = s.config.textTime {
            // SDXL's six micro-conditioning numbers fix the pooled width the graph declares.
            pooledWidth = spec.inputDim - 6 * spec.timeEmbedDim
            guard pooledWidth! >= 1 else {
                throw UNetError(.unsupportedConfig, "projection_class_embeddings_input_dim",
                                "\(spec.inputDim) leaves no pooled text embedding beside 6 time ids of \(spec.timeEmbedDim)")
            }
        }
        var b = GraphBuilder(shapes: shapes, file: file)
        var u = Walker(b: b, config: s.config)
        let out = try u.forward(s)
        b = u.b
        b.rename(output: out, to: "out_sample")
        let spatial = io.spatial(("height", "width"))
        var inputs = [
            ValueInfo(name: "sample", type: .float32, shape: [io.batch, .fixed(s.convIn.inChannels)] + spatial),
            ValueInfo(name: "timestep", type: .float32, shape: [io.fixed == nil ? .symbolic("timestep_batch") : .fixed(1)]),
        ]
        if let contextDim = s.config.crossAttentionDim {
            inputs.append(ValueInfo(name: "encoder_hidden_states", type: .float32,
                                    shape: [io.batch, io.fixed == nil ? .symbolic("sequence") : .fixed(sequence), .fixed(contextDim)]))
        }
        if let pooledWidth {
            inputs.append(ValueInfo(name: "text_embeds", type: .float32, shape: [io.batch, .fixed(pooledWidth)]))
            inputs.append(ValueInfo(name: "time_ids", type: .float32, shape: [io.batch, .fixed(6)]))
        }
        let outputs = [ValueInfo(name: "out_sample", type: .float32, shape: [io.batch, .fixed(s.convOut.outChannels)] + spatial)]
        return b.graph(name: "unet", inputs: inputs, outputs: outputs)
    }

    /// Walks the structure in the engine's forward order (UNetModel.swift), emitting the same arithmetic.
    private struct Walker {
        var b: GraphBuilder
        let config: UNetConfig
        var tembAct = ""

        mutating func forward(_ s: UNetStructure) throws -> String {
            tembAct = try timeEmbedding(s)
            var h = try conv(s.convIn, "sample", scope: "conv_in")
            var skips = [h]
            for (i, block) in s.down.enumerated() {
                for (j, layer) in block.layers.enumerated() {
                    h = try blockLayer(layer, h, scope: "down_blocks.\(i)", j)
                    skips.append(h)
                }
                if let ds = block.downsample {
                    h = try conv(ds.conv, h, scope: "down_blocks.\(i).downsamplers.0")
                    skips.append(h)
                }
            }
            if let mid = s.mid {
                h = try resnet(mid.first, h, scope: "mid_block.resnets.0")
                for (k, (attention, next)) in zip(mid.attentions, mid.resnets).enumerated() {
                    if let attention { h = try self.attention(attention, h, scope: "mid_block.attentions.\(k)") }
                    h = try resnet(next, h, scope: "mid_block.resnets.\(k + 1)")
                }
            }
            for (i, block) in s.up.enumerated() {
                for (j, layer) in block.layers.enumerated() {
                    guard let skip = skips.popLast() else {
                        throw UNetError(.invalidConfig, "up_block_types", "the up blocks consume more skips than the down blocks make")
                    }
                    h = b.op("Concat", [h, skip], scope: "up_blocks.\(i).resnets.\(j)", [("axis", .int(1))])
                    h = try blockLayer(layer, h, scope: "up_blocks.\(i)", j)
                }
                if let us = block.upsample {
                    h = b.upsampleNearest2x(h, scope: "up_blocks.\(i).upsamplers.0")
                    h = try conv(us.conv, h, scope: "up_blocks.\(i).upsamplers.0")
                }
            }
            h = try groupNorm(s.normOut, h, scope: "conv_norm_out")
            h = b.silu(h, scope: "conv_norm_out")
            return try conv(s.convOut, h, scope: "conv_out")
        }

        /// diffusers' Timesteps + TimestepEmbedding: sin/cos of the timestep (broadcast to the batch)
        /// times the engine's frequencies, then linear, SiLU, linear; returns SiLU of the embedding,
        /// which every ResNet's time projection reads.
        mutating func timeEmbedding(_ s: UNetStructure) throws -> String {
            let dim = s.timeLinear1.inFeatures, half = dim / 2
            let scope = "time_proj"
            let logPeriod = Float(-log(Double(10000)))
            let freqs: [Float] = (0..<half).map { i in expf(logPeriod * Float(i) / (Float(half) - config.freqShift)) }
            let batch = b.op("Shape", ["sample"], scope: scope, [("start", .int(0)), ("end", .int(1))])
            let t = b.op("Expand", ["timestep", batch], scope: scope)
            let column = b.op("Unsqueeze", [t, b.int64s([1])], scope: scope)
            let arg = b.op("Mul", [column, b.floats(freqs, shape: [1, half], name: "time_proj_frequencies")], scope: scope)
            let sin = b.op("Sin", [arg], scope: scope), cos = b.op("Cos", [arg], scope: scope)
            var emb = b.op("Concat", config.flipSinToCos ? [cos, sin] : [sin, cos], scope: scope, [("axis", .int(1))])
            if dim % 2 == 1 {
                emb = b.op("Pad", [emb, b.int64s([0, 0, 0, 1])], scope: scope)
            }
            let l1 = try linear(s.timeLinear1, emb, scope: "time_embedding.linear_1")
            var l2 = try linear(s.timeLinear2, b.silu(l1, scope: "time_embedding"), scope: "time_embedding.linear_2")
            if let spec = config.textTime, let add1 = s.addLinear1, let add2 = s.addLinear2 {
                l2 = b.op("Add", [l2, try addedEmbedding(spec, add1, add2)], scope: "add_embedding")
            }
            return b.silu(l2, scope: "time_embedding")
        }

        /// diffusers' text_time branch: add_time_proj (sin/cos of each time id, the time embedding's
        /// frequency rule at addition_time_embed_dim) flattened per item after text_embeds, through
        /// add_embedding's linear, SiLU, linear; the result is added to the time embedding.
        mutating func addedEmbedding(_ spec: TextTimeConfig, _ add1: LinearLayer, _ add2: LinearLayer) throws -> String {
            let dim = spec.timeEmbedDim, half = dim / 2
            let scope = "add_time_proj"
            let logPeriod = Float(-log(Double(10000)))
            let freqs: [Float] = (0..<half).map { i in expf(logPeriod * Float(i) / (Float(half) - config.freqShift)) }
            let ids = b.op("Unsqueeze", ["time_ids", b.int64s([2])], scope: scope)
            let arg = b.op("Mul", [ids, b.floats(freqs, shape: [1, 1, half], name: "add_time_proj_frequencies")], scope: scope)
            let sin = b.op("Sin", [arg], scope: scope), cos = b.op("Cos", [arg], scope: scope)
            var emb = b.op("Concat", config.flipSinToCos ? [cos, sin] : [sin, cos], scope: scope, [("axis", .int(2))])
            if dim % 2 == 1 {
                emb = b.op("Pad", [emb, b.int64s([0, 0, 0, 0, 0, 1])], scope: scope)
            }
            let flat = b.op("Reshape", [emb, b.int64s([0, -1])], scope: scope)
            let input = b.op("Concat", ["text_embeds", flat], scope: scope, [("axis", .int(1))])
            let l1 = try linear(add1, input, scope: "add_embedding.linear_1")
            return try linear(add2, b.silu(l1, scope: "add_embedding"), scope: "add_embedding.linear_2")
        }

        mutating func linear(_ l: LinearLayer, _ x: String, scope: String) throws -> String {
            try b.linear(x, weight: l.weight, bias: l.bias, in: l.inFeatures, out: l.outFeatures, scope: scope)
        }

        /// A pointwise-conv projection (proj_in/proj_out stored [out, in, 1, 1]) stays a Conv on planes.
        mutating func conv(_ c: ConvLayer, _ x: String, scope: String) throws -> String {
            try b.conv(x, weight: c.weight, bias: c.bias, in: c.inChannels, out: c.outChannels, kernel: c.kernel,
                       stride: c.stride, padding: c.padding, padBottomRight: c.padBottomRight, scope: scope)
        }

        mutating func groupNorm(_ n: GroupNormLayer, _ x: String, scope: String) throws -> String {
            try b.groupNorm(x, weight: n.weight, bias: n.bias, channels: n.channels, groups: n.groups, eps: n.eps, scope: scope)
        }

        mutating func blockLayer(_ layer: BlockLayer, _ x: String, scope: String, _ j: Int) throws -> String {
            let h = try resnet(layer.resnet, x, scope: "\(scope).resnets.\(j)")
            guard let attention = layer.attention else { return h }
            return try self.attention(attention, h, scope: "\(scope).attentions.\(j)")
        }

        /// out = (conv2(silu(norm2(conv1(silu(norm1(x))) + time_proj(temb)))) + shortcut(x)) / scale.
        mutating func resnet(_ r: ResnetBlock, _ x: String, scope: String) throws -> String {
            var h = b.silu(try groupNorm(r.norm1, x, scope: scope + ".norm1"), scope: scope)
            h = try conv(r.conv1, h, scope: scope + ".conv1")
            let t = try linear(r.timeProj, tembAct, scope: scope + ".time_emb_proj")
            h = b.op("Add", [h, b.op("Unsqueeze", [t, b.int64s([2, 3])], scope: scope)], scope: scope)
            h = b.silu(try groupNorm(r.norm2, h, scope: scope + ".norm2"), scope: scope)
            h = try conv(r.conv2, h, scope: scope + ".conv2")
            let skip = try r.shortcut.map { try conv($0, x, scope: scope + ".conv_shortcut") } ?? x
            h = b.op("Add", [h, skip], scope: scope)
            if r.outputScale != 1 { h = b.op("Div", [h, b.scalar(r.outputScale)], scope: scope) }
            return h
        }

        mutating func attention(_ a: BlockAttention, _ x: String, scope: String) throws -> String {
            switch a {
            case .transformer(let t): return try transformer(t, x, scope: scope)
            case .spatial(let s):
                let n = try groupNorm(s.norm, x, scope: scope + ".group_norm")
                let tokens = b.toTokens(n, scope: scope)
                let o = try attentionLayer(s.attention, tokens, context: nil, scope: scope)
                var h = b.op("Add", [b.fromTokens(o, like: x, channels: s.attention.toOut.outFeatures, scope: scope), x], scope: scope)
                if s.rescale != 1 { h = b.op("Div", [h, b.scalar(s.rescale)], scope: scope) }
                return h
            }
        }

        /// Transformer2DModel: norm, proj_in (1x1 conv on planes, or linear on tokens), the blocks,
        /// proj_out, plus the input.
        mutating func transformer(_ t: Transformer2D, _ x: String, scope: String) throws -> String {
            let n = try groupNorm(t.norm, x, scope: scope + ".norm")
            var h: String
            if t.projIn.isPointwiseConv {
                let p = try pointwise(t.projIn, n, scope: scope + ".proj_in")
                h = b.toTokens(p, scope: scope)
            } else {
                h = try linear(t.projIn, b.toTokens(n, scope: scope), scope: scope + ".proj_in")
            }
            for (i, block) in t.blocks.enumerated() {
                h = try transformerBlock(block, h, scope: "\(scope).transformer_blocks.\(i)")
            }
            let out: String
            if t.projOut.isPointwiseConv {
                out = try pointwise(t.projOut, b.fromTokens(h, like: x, channels: t.projOut.inFeatures, scope: scope), scope: scope + ".proj_out")
            } else {
                out = b.fromTokens(try linear(t.projOut, h, scope: scope + ".proj_out"), like: x, channels: t.projOut.outFeatures, scope: scope)
            }
            return b.op("Add", [out, x], scope: scope)
        }

        mutating func pointwise(_ l: LinearLayer, _ x: String, scope: String) throws -> String {
            try b.conv(x, weight: l.weight, bias: l.bias, in: l.inFeatures, out: l.outFeatures, kernel: 1, padding: 0, scope: scope)
        }

        mutating func transformerBlock(_ t: TransformerBlock, _ x0: String, scope: String) throws -> String {
            let dim = t.attn1.toOut.outFeatures
            let n1 = try b.layerNorm(x0, weight: t.norm1.weight, bias: t.norm1.bias, dim: dim, eps: t.norm1.eps, scope: scope + ".norm1")
            let x1 = b.op("Add", [try attentionLayer(t.attn1, n1, context: nil, scope: scope + ".attn1"), x0], scope: scope)
            let n2 = try b.layerNorm(x1, weight: t.norm2.weight, bias: t.norm2.bias, dim: dim, eps: t.norm2.eps, scope: scope + ".norm2")
            let x2 = b.op("Add", [try attentionLayer(t.attn2, n2, context: "encoder_hidden_states", scope: scope + ".attn2"), x1], scope: scope)
            let n3 = try b.layerNorm(x2, weight: t.norm3.weight, bias: t.norm3.bias, dim: dim, eps: t.norm3.eps, scope: scope + ".norm3")
            // GEGLU: the projection's first half times GELU of its second half.
            let p = try linear(t.ffIn, n3, scope: scope + ".ff.net.0.proj")
            let half = t.ffIn.outFeatures / 2
            let parts = b.node("Split", [p, b.int64s([half, half])], scope: scope + ".ff.net.0", outputs: 2, [("axis", .int(-1))])
            let g = b.op("Mul", [parts[0], b.gelu(parts[1], scope: scope + ".ff.net.0")], scope: scope + ".ff.net.0")
            return b.op("Add", [try linear(t.ffOut, g, scope: scope + ".ff.net.2"), x2], scope: scope)
        }

        mutating func attentionLayer(_ a: AttentionLayer, _ x: String, context: String?, scope: String) throws -> String {
            let c = context ?? x
            let q = try linear(a.toQ, x, scope: scope + ".to_q")
            let k = try linear(a.toK, c, scope: scope + ".to_k")
            let v = try linear(a.toV, c, scope: scope + ".to_v")
            let o = b.attention(q: q, k: k, v: v, heads: a.heads, headDim: a.toQ.outFeatures / a.heads, scope: scope)
            return try linear(a.toOut, o, scope: scope + ".to_out.0")
        }
    }
}
