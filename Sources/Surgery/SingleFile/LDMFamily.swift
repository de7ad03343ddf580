import TensorFormats

extension ErrorCode {
    /// An LDM single file whose UNet or text encoder is not SD 1.x, SD 2.x or SDXL.
    public static let ldmUnknownFamily = ErrorCode(rawValue: "ldm-unknown-family")
    /// A tensor the layout requires is absent (named in the error).
    public static let ldmMissingTensor = ErrorCode(rawValue: "ldm-missing-tensor")
    /// Two tensors (or a tensor and a config) disagree about a size.
    public static let ldmShapeContradiction = ErrorCode(rawValue: "ldm-shape-contradiction")
    /// A tensor under a component's prefix that no row of the key table maps.
    public static let ldmNoRule = ErrorCode(rawValue: "ldm-no-rule")
}

/// The Stable Diffusion generations a single file can hold, with the constants weights cannot tell
/// (the values diffusers' own configs for these families use: `stable-diffusion-v1-5`,
/// `stable-diffusion-2-1`, `stable-diffusion-xl-base-1.0`).
public enum LDMFamily: String, Sendable, CaseIterable {
    case sd1, sd2, sdxl

    /// SD1 counts 8 heads everywhere; SD2 and SDXL use 64-wide heads (diffusers stores the head count
    /// in `attention_head_dim`). A width that the constant does not divide gets one head.
    func attentionHeads(channels: Int) -> Int {
        switch self {
        case .sd1: return channels % 8 == 0 ? 8 : 1
        case .sd2, .sdxl: return channels >= 64 && channels % 64 == 0 ? channels / 64 : 1
        }
    }

    /// SD2's 768 px model is v-prediction, which is what diffusers assumes for an SD2 single file.
    /// GroupNorm groups: 32 in every released model; a toy model whose widths 32 does not divide gets the
    /// largest count up to 32 that divides them all (weights cannot tell, and 32 would not build).
    static func normGroups(_ widths: [Int]) -> Int {
        (1...32).reversed().first { g in widths.allSatisfy { $0 % g == 0 } } ?? 1
    }

    var defaultPrediction: String { self == .sd2 ? "v_prediction" : "epsilon" }

    func imageSize(prediction: String) -> Int {
        switch self {
        case .sd1: return 512
        case .sd2: return prediction == "v_prediction" ? 768 : 512
        case .sdxl: return 1024
        }
    }

    var vaeScalingFactor: Double { self == .sdxl ? 0.13025 : 0.18215 }

    var pipelineClass: String { self == .sdxl ? "StableDiffusionXLPipeline" : "StableDiffusionPipeline" }

    var schedulerClass: String {
        switch self {
        case .sd1: return "PNDMScheduler"
        case .sd2: return "DDIMScheduler"
        case .sdxl: return "EulerDiscreteScheduler"
        }
    }
}

/// A checkpoint's tensors by name, with the file's name for errors.
struct TensorIndex {
    let checkpoint: Checkpoint
    let byName: [String: TensorEntry]

    init(_ checkpoint: Checkpoint) {
        self.checkpoint = checkpoint
        byName = Dictionary(checkpoint.entries.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    func require(_ name: String, rank: Int? = nil, rule: String) throws -> TensorEntry {
        guard let entry = byName[name] else {
            throw SurgeryError(.ldmMissingTensor, "\(rule) needs this tensor", file: checkpoint.name, tensor: name)
        }
        if let rank, entry.shape.count != rank {
            throw SurgeryError(.ldmShapeContradiction, "\(rule): expected rank \(rank), found shape \(entry.shape)", file: checkpoint.name, tensor: name)
        }
        return entry
    }

    func has(prefix: String) -> Bool { byName.keys.contains { $0.hasPrefix(prefix) } }

    /// The distinct integers N of names `prefix + N + "."`.
    func indices(after prefix: String) -> Set<Int> {
        var found = Set<Int>()
        for name in byName.keys where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            if let dot = rest.firstIndex(of: "."), let n = Int(rest[..<dot]), n >= 0, n < 1 << 20 { found.insert(n) }
        }
        return found
    }

    func contradiction(_ message: String, tensor: String? = nil) -> SurgeryError {
        SurgeryError(.ldmShapeContradiction, message, file: checkpoint.name, tensor: tensor)
    }
}

/// Structures and configs read from LDM names and shapes.
enum LDMInference {
    /// The UNet's structure from its LDM names (prefix `p`).
    static func unetStructure(_ index: TensorIndex, prefix p: String) throws -> LDMLayout.UNetStructure {
        let inputs = index.indices(after: p + "input_blocks.")
        // Real UNets have at most a few dozen input blocks; a bound keeps hostile indices from sizing the rules.
        if let last = inputs.max(), last > 4096 {
            throw index.contradiction("UNet structure: input block index \(last) is beyond any UNet (at most 4096)", tensor: p + "input_blocks.\(last)")
        }
        guard let last = inputs.max(), last >= 1 else {
            throw SurgeryError(.ldmMissingTensor, "UNet structure: no input_blocks beyond conv_in", file: index.checkpoint.name, tensor: p + "input_blocks.1.0.in_layers.0.weight")
        }
        // The first downsampler ends block 0: it sits at index layers_per_block + 1.
        let firstDown = (1...last).first { index.byName[p + "input_blocks.\($0).0.op.weight"] != nil }
        let layers = firstDown.map { $0 - 1 } ?? last
        guard layers >= 1, (last + 1) % (layers + 1) == 0 else {
            throw index.contradiction("UNet structure: \(last + 1) input blocks do not make whole down blocks of \(layers) layers", tensor: p + "input_blocks.\(last).0.in_layers.0.weight")
        }
        let blocks = (last + 1) / (layers + 1)
        let outputs = index.indices(after: p + "output_blocks.")
        guard outputs.count == blocks * (layers + 1), outputs.max() == blocks * (layers + 1) - 1 else {
            throw index.contradiction("UNet structure: \(outputs.count) output blocks, \(blocks * (layers + 1)) expected from the input blocks", tensor: p + "output_blocks.0.0.in_layers.0.weight")
        }
        let stride = layers + 1
        let down = (0..<blocks).map { index.has(prefix: p + "input_blocks.\(1 + $0 * stride).1.") }
        let up = (0..<blocks).map { b in
            index.byName.keys.contains { $0.hasPrefix(p + "output_blocks.\(b * stride).1.") && !$0.hasPrefix(p + "output_blocks.\(b * stride).1.conv.") }
        }
        let midAttention = index.has(prefix: p + "middle_block.2.")
        return LDMLayout.UNetStructure(blocks: blocks, layersPerBlock: layers, downAttention: down, upAttention: up,
                                       midAttention: midAttention, addition: index.byName[p + "label_emb.0.0.weight"] != nil)
    }

    /// The family the UNet's own tensors say: an addition embedding is SDXL, linear transformer
    /// projections SD2, convolutional ones SD1.
    static func unetFamily(_ index: TensorIndex, prefix p: String, structure s: LDMLayout.UNetStructure) throws -> LDMFamily {
        if s.addition { return .sdxl }
        guard let proj = index.byName.first(where: { $0.key.hasPrefix(p) && $0.key.hasSuffix(".proj_in.weight") })?.value else {
            throw SurgeryError(.ldmUnknownFamily, "the UNet has no transformer blocks (proj_in), so it is not SD 1.x, 2.x or XL", file: index.checkpoint.name, tensor: p + "input_blocks.1.1.proj_in.weight")
        }
        return proj.shape.count == 2 ? .sd2 : .sd1
    }

    static func unetConfig(_ index: TensorIndex, prefix p: String, structure s: LDMLayout.UNetStructure, family: LDMFamily,
                           prediction: String, pooledDim: Int?) throws -> JSONValue {
        let stride = s.layersPerBlock + 1
        var channels: [Int] = []
        for b in 0..<s.blocks {
            let conv = try index.require(p + "input_blocks.\(1 + b * stride).0.in_layers.2.weight", rank: 4, rule: "block_out_channels")
            channels.append(conv.shape[0])
        }
        let convIn = try index.require(p + "input_blocks.0.0.weight", rank: 4, rule: "in_channels")
        let convOut = try index.require(p + "out.2.weight", rank: 4, rule: "out_channels")
        guard convIn.shape[0] == channels[0] else {
            throw index.contradiction("conv_in has \(convIn.shape[0]) outputs, block 0 has \(channels[0]) channels", tensor: convIn.name)
        }
        var depths: [Int] = []
        var crossDim: Int?
        var linear = false
        for b in 0..<s.blocks {
            guard s.downAttention[b] else { depths.append(1); continue }
            let base = p + "input_blocks.\(1 + b * stride).1."
            depths.append(max(1, index.indices(after: base + "transformer_blocks.").count))
            let toK = try index.require(base + "transformer_blocks.0.attn2.to_k.weight", rank: 2, rule: "cross_attention_dim")
            if let crossDim, crossDim != toK.shape[1] {
                throw index.contradiction("attn2.to_k takes \(toK.shape[1]) inputs, an earlier block \(crossDim)", tensor: toK.name)
            }
            crossDim = toK.shape[1]
            linear = (try index.require(base + "proj_in.weight", rule: "use_linear_projection")).shape.count == 2
        }
        let heads = channels.map { family.attentionHeads(channels: $0) }
        // SD1 stores one head count for every block, so it must divide them all.
        let sharedHeads = heads.allSatisfy { $0 == heads[0] } ? heads[0] : 1
        var members: [JSONMember] = [
            JSONMember("_class_name", .string("UNet2DConditionModel")),
            JSONMember("_diffusers_version", .string("0.42.1")),
            JSONMember("sample_size", .int(family.imageSize(prediction: prediction) / 8)),
            JSONMember("in_channels", .int(convIn.shape[1])),
            JSONMember("out_channels", .int(convOut.shape[0])),
            JSONMember("down_block_types", .strings(s.downAttention.map { $0 ? "CrossAttnDownBlock2D" : "DownBlock2D" })),
            JSONMember("up_block_types", .strings(s.upAttention.map { $0 ? "CrossAttnUpBlock2D" : "UpBlock2D" })),
            JSONMember("mid_block_type", s.midAttention ? .string("UNetMidBlock2DCrossAttn") : .string("UNetMidBlock2D")),
            JSONMember("block_out_channels", .ints(channels)),
            JSONMember("layers_per_block", .int(s.layersPerBlock)),
            JSONMember("norm_num_groups", .int(LDMFamily.normGroups(channels))),
            JSONMember("conv_in_kernel", .int(convIn.shape[2])),
            JSONMember("conv_out_kernel", .int(convOut.shape[2])),
            JSONMember("cross_attention_dim", crossDim.map { .int($0) } ?? .null),
            JSONMember("attention_head_dim", family == .sd1 ? .int(sharedHeads) : .ints(heads)),
            JSONMember("use_linear_projection", .bool(linear)),
            JSONMember("transformer_layers_per_block", Set(depths).count == 1 ? .int(depths[0]) : .ints(depths)),
        ]
        if s.addition {
            let embed = try index.require(p + "label_emb.0.0.weight", rank: 2, rule: "projection_class_embeddings_input_dim")
            // The addition input is the pooled text embedding and six time ids of addition_time_embed_dim each.
            let pooled = pooledDim ?? 1280
            guard embed.shape[1] > pooled, (embed.shape[1] - pooled) % 6 == 0 else {
                throw index.contradiction("label_emb takes \(embed.shape[1]) inputs, not \(pooled) pooled + 6 time embeddings", tensor: embed.name)
            }
            members += [
                JSONMember("addition_embed_type", .string("text_time")),
                JSONMember("addition_time_embed_dim", .int((embed.shape[1] - pooled) / 6)),
                JSONMember("projection_class_embeddings_input_dim", .int(embed.shape[1])),
            ]
        }
        return .object(members)
    }

    static func vaeStructure(_ index: TensorIndex, prefix p: String) throws -> LDMLayout.VAEStructure {
        let blocks = index.indices(after: p + "encoder.down.").count
        let layers = index.indices(after: p + "encoder.down.0.block.").count
        guard blocks <= 64, layers <= 64, index.indices(after: p + "encoder.down.").max() == blocks - 1 || blocks == 0 else {
            throw index.contradiction("VAE structure: encoder down blocks must be numbered 0..n-1 with n, and resnets per block, at most 64", tensor: p + "encoder.down.0.block.0.conv1.weight")
        }
        guard blocks >= 1, layers >= 1 else {
            throw SurgeryError(.ldmMissingTensor, "VAE structure: no encoder down blocks", file: index.checkpoint.name, tensor: p + "encoder.down.0.block.0.conv1.weight")
        }
        let decoder = index.indices(after: p + "decoder.up.0.block.").count
        guard decoder == layers + 1, index.indices(after: p + "decoder.up.").count == blocks else {
            throw index.contradiction("VAE decoder has \(decoder) resnets per block, encoder \(layers) (decoder must have one more)", tensor: p + "decoder.up.0.block.0.conv1.weight")
        }
        return LDMLayout.VAEStructure(blocks: blocks, layersPerBlock: layers)
    }

    static func vaeConfig(_ index: TensorIndex, prefix p: String, structure s: LDMLayout.VAEStructure, family: LDMFamily, prediction: String) throws -> JSONValue {
        var channels: [Int] = []
        for i in 0..<s.blocks {
            channels.append(try index.require(p + "encoder.down.\(i).block.0.conv1.weight", rank: 4, rule: "block_out_channels").shape[0])
        }
        let convIn = try index.require(p + "encoder.conv_in.weight", rank: 4, rule: "in_channels")
        let convOut = try index.require(p + "decoder.conv_out.weight", rank: 4, rule: "out_channels")
        let latent = try index.require(p + "decoder.conv_in.weight", rank: 4, rule: "latent_channels")
        return .object([
            JSONMember("_class_name", .string("AutoencoderKL")),
            JSONMember("_diffusers_version", .string("0.42.1")),
            JSONMember("in_channels", .int(convIn.shape[1])),
            JSONMember("out_channels", .int(convOut.shape[0])),
            JSONMember("down_block_types", .strings(Array(repeating: "DownEncoderBlock2D", count: s.blocks))),
            JSONMember("up_block_types", .strings(Array(repeating: "UpDecoderBlock2D", count: s.blocks))),
            JSONMember("block_out_channels", .ints(channels)),
            JSONMember("layers_per_block", .int(s.layersPerBlock)),
            JSONMember("act_fn", .string("silu")),
            JSONMember("latent_channels", .int(latent.shape[1])),
            JSONMember("norm_num_groups", .int(LDMFamily.normGroups(channels))),
            JSONMember("sample_size", .int(family.imageSize(prediction: prediction))),
            JSONMember("scaling_factor", .double(family.vaeScalingFactor)),
            JSONMember("force_upcast", .bool(true)),
            JSONMember("use_quant_conv", .bool(index.byName[p + "quant_conv.weight"] != nil)),
            JSONMember("use_post_quant_conv", .bool(index.byName[p + "post_quant_conv.weight"] != nil)),
            JSONMember("mid_block_add_attention", .bool(index.has(prefix: p + "encoder.mid.attn_1."))),
        ])
    }

    /// A transformers CLIPTextConfig from the sizes of the embeddings and the first layer, given in
    /// transformers names (`names` maps them to the file's entries).
    static func clipConfig(_ index: TensorIndex, names: [String: TensorEntry], activation: String, projection: Int?,
                           file: String) throws -> JSONValue {
        func need(_ name: String, rank: Int) throws -> TensorEntry {
            guard let entry = names[name] else {
                throw SurgeryError(.ldmMissingTensor, "text encoder config needs this tensor", file: file, tensor: name)
            }
            guard entry.shape.count == rank else {
                throw SurgeryError(.ldmShapeContradiction, "expected rank \(rank), found shape \(entry.shape)", file: file, tensor: name)
            }
            return entry
        }
        let base = names.keys.contains { $0.hasPrefix("text_model.") } ? "text_model." : ""
        let tokens = try need(base + "embeddings.token_embedding.weight", rank: 2)
        let positions = try need(base + "embeddings.position_embedding.weight", rank: 2)
        let fc1 = try need(base + "encoder.layers.0.mlp.fc1.weight", rank: 2)
        var layers = 0
        while names[base + "encoder.layers.\(layers).mlp.fc1.weight"] != nil { layers += 1 }
        let hidden = tokens.shape[1]
        guard positions.shape[1] == hidden, fc1.shape[1] == hidden else {
            throw SurgeryError(.ldmShapeContradiction, "token embeddings are \(hidden) wide, positions \(positions.shape[1]), fc1 input \(fc1.shape[1])", file: file, tensor: fc1.name)
        }
        var members: [JSONMember] = [
            JSONMember("architectures", .strings([projection == nil ? "CLIPTextModel" : "CLIPTextModelWithProjection"])),
            JSONMember("model_type", .string("clip_text_model")),
            JSONMember("vocab_size", .int(tokens.shape[0])),
            JSONMember("hidden_size", .int(hidden)),
            JSONMember("intermediate_size", .int(fc1.shape[0])),
            JSONMember("num_hidden_layers", .int(layers)),
            JSONMember("num_attention_heads", .int(hidden % 64 == 0 ? hidden / 64 : 1)),
            JSONMember("max_position_embeddings", .int(positions.shape[0])),
            JSONMember("hidden_act", .string(activation)),
            JSONMember("layer_norm_eps", .double(1e-5)),
            JSONMember("bos_token_id", .int(0)),
            JSONMember("eos_token_id", .int(2)),
            JSONMember("pad_token_id", .int(1)),
        ]
        members.append(JSONMember("projection_dim", .int(projection ?? (activation == "gelu" ? 512 : 768))))
        return .object(members)
    }

    static func schedulerConfig(_ family: LDMFamily, prediction: String) -> JSONValue {
        var members: [JSONMember] = [
            JSONMember("_class_name", .string(family.schedulerClass)),
            JSONMember("_diffusers_version", .string("0.42.1")),
            JSONMember("beta_schedule", .string("scaled_linear")),
            JSONMember("beta_start", .double(0.00085)),
            JSONMember("beta_end", .double(0.012)),
            JSONMember("num_train_timesteps", .int(1000)),
            JSONMember("prediction_type", .string(prediction)),
            JSONMember("steps_offset", .int(1)),
            JSONMember("timestep_spacing", .string("leading")),
            JSONMember("clip_sample", .bool(false)),
            JSONMember("set_alpha_to_one", .bool(false)),
        ]
        switch family {
        case .sd1: members.append(JSONMember("skip_prk_steps", .bool(true)))
        case .sd2: break
        case .sdxl: members += [JSONMember("interpolation_type", .string("linear")), JSONMember("use_karras_sigmas", .bool(false))]
        }
        return .object(members)
    }
}
