import Foundation
import TensorFormats

extension LDMConversion {
    /// Writes the original single file of a diffusers pipeline folder: the layout diffusers'
    /// `from_single_file` reads (formats/ldm.md).
    public static func toLDM(_ pipeline: PipelineFolder, output: String, options: LDMConversionOptions = LDMConversionOptions()) throws -> LDMConversionResult {
        guard let unet = try pipeline.open("unet", options: OpenOptions(randomAccess: true)) else {
            throw SurgeryError(.ldmMissingTensor, "the pipeline has no unet/ with safetensors weights\(pipeline.variant.map { " of variant \($0)" } ?? "")", file: pipeline.path)
        }
        let unetConfig = try config(of: unet)
        let vae = try pipeline.open("vae", options: OpenOptions(randomAccess: true))
        let text = try pipeline.open("text_encoder", options: OpenOptions(randomAccess: true))
        let text2 = try pipeline.open("text_encoder_2", options: OpenOptions(randomAccess: true))
        let textConfig = try text.map(config(of:))

        let family: LDMFamily
        if text2 != nil || unetConfig["addition_embed_type"]?.stringValue == "text_time" {
            family = .sdxl
        } else if let act = textConfig?["hidden_act"]?.stringValue {
            family = act == "quick_gelu" ? .sd1 : .sd2
        } else {
            family = unetConfig["use_linear_projection"] == .bool(true) ? .sd2 : .sd1
        }
        var result = LDMConversionResult(family: family)
        var sources: [Checkpoint] = []
        var tensors: [LDMOutputTensor] = []

        func add(_ checkpoint: Checkpoint, rules: [LDMBlockRule], prefix: String, normalize: (String) -> String = { $0 }) throws {
            let source = sources.count
            sources.append(checkpoint)
            var fused: [String: [TensorEntry?]] = [:]
            var fusedOrder: [String] = []
            for entry in checkpoint.entries {
                let name = normalize(entry.name)
                if name.hasSuffix("position_ids") { continue }
                guard let mapped = rules.ldmName(ofDiffusers: name) else {
                    throw SurgeryError(.ldmNoRule, "no row of the key table (formats/ldm.md) maps this tensor", file: checkpoint.name, tensor: entry.name)
                }
                var tensor: LDMOutputTensor
                switch mapped.transform {
                case .fusedQKV:
                    if fused[mapped.name] == nil { fused[mapped.name] = [nil, nil, nil]; fusedOrder.append(mapped.name) }
                    fused[mapped.name]![mapped.part] = entry
                    continue
                case .transpose:
                    tensor = try LDMOutputTensor.transpose(entry, as: prefix + mapped.name, file: checkpoint.name)
                case .squeezeConv:
                    tensor = .copy(entry, as: prefix + mapped.name, shape: entry.shape.count == 2 ? entry.shape + [1, 1] : entry.shape)
                case .copy:
                    tensor = .copy(entry, as: prefix + mapped.name)
                }
                tensor.source = source
                tensors.append(tensor)
            }
            for name in fusedOrder {
                let parts = fused[name]!
                guard let q = parts[0], let k = parts[1], let v = parts[2] else {
                    let missing = ["q", "k", "v"][parts.firstIndex(where: { $0 == nil })!]
                    throw SurgeryError(.ldmMissingTensor, "a fused in_proj needs q, k and v; \(missing) is missing", file: checkpoint.name, tensor: name)
                }
                var joined = try LDMOutputTensor.joinQKV([q, k, v], name: prefix + name, file: checkpoint.name)
                joined.source = source
                tensors.append(joined)
            }
            result.components.append((checkpoint.name as NSString).lastPathComponent)
        }

        try add(unet, rules: LDMLayout.unet(try unetStructure(unetConfig, file: unet.name)), prefix: LDMKeyTable.unetPrefix)
        if let vae {
            let vaeConfig = try config(of: vae)
            let blocks = vaeConfig["block_out_channels"].flatMap(intArray)?.count ?? 0
            guard blocks > 0, let layers = vaeConfig["layers_per_block"]?.intValue, layers > 0, layers < 1 << 10 else {
                throw SurgeryError(.invalidConfig, "VAE config needs block_out_channels and layers_per_block", file: vae.name, tensor: "layers_per_block")
            }
            try add(vae, rules: LDMLayout.vae(.init(blocks: blocks, layersPerBlock: layers)), prefix: LDMKeyTable.vaePrefix)
        }
        let stripTextModel: (String) -> String = { $0.hasPrefix("text_model.") ? String($0.dropFirst("text_model.".count)) : $0 }
        for (checkpoint, encoder) in zip([text, text2], textEncoders(family)) {
            guard let checkpoint else { continue }
            let layers = Set(checkpoint.entries.compactMap { layerIndex(stripTextModel($0.name)) }).count
            guard layers <= 1024 else {
                throw SurgeryError(.ldmShapeContradiction, "text encoder has \(layers) layers, beyond any CLIP (at most 1024)", file: checkpoint.name)
            }
            let rules = encoder.openCLIP
                ? LDMLayout.openCLIP(prefix: "", base: encoder.base, layers: layers, projection: encoder.projection)
                : LDMLayout.huggingFaceCLIP(prefix: "")
            try add(checkpoint, rules: rules, prefix: encoder.prefix, normalize: encoder.base.isEmpty ? stripTextModel : { $0 })
        }

        var writer = LDMWriter(sources: sources)
        try writer.write(tensors, to: output)
        try writer.commit()
        result.files = writer.files
        result.tensors = writer.tensors
        result.bytesWritten = writer.bytes
        return result
    }

    static func config(of checkpoint: Checkpoint) throws -> JSONValue {
        guard let text = checkpoint.configJSON else {
            throw SurgeryError(.invalidConfig, "component has no config.json", file: checkpoint.name)
        }
        do { return try JSONParser.parse(text) } catch {
            throw SurgeryError(.invalidConfig, "config.json is not valid JSON: \(error.message)", file: checkpoint.name, cause: error)
        }
    }

    static func intArray(_ value: JSONValue) -> [Int]? {
        guard case .array(let items) = value else { return nil }
        let ints = items.compactMap(\.intValue)
        return ints.count == items.count ? ints : nil
    }

    static func layerIndex(_ name: String) -> Int? {
        guard name.hasPrefix("encoder.layers.") else { return nil }
        let rest = name.dropFirst("encoder.layers.".count)
        return rest.firstIndex(of: ".").flatMap { Int(rest[..<$0]) }
    }

    /// The UNet's structure from its diffusers config.
    static func unetStructure(_ config: JSONValue, file: String) throws -> LDMLayout.UNetStructure {
        guard let down = config["down_block_types"].flatMap({ v -> [String]? in
            guard case .array(let items) = v else { return nil }
            return items.compactMap(\.stringValue)
        }), !down.isEmpty, down.count < 64 else {
            throw SurgeryError(.invalidConfig, "UNet config needs down_block_types", file: file, tensor: "down_block_types")
        }
        let up: [String]
        if case .array(let items)? = config["up_block_types"] { up = items.compactMap(\.stringValue) } else { up = [] }
        guard up.count == down.count else {
            throw SurgeryError(.invalidConfig, "up_block_types has \(up.count) entries, down_block_types \(down.count)", file: file, tensor: "up_block_types")
        }
        guard let layers = config["layers_per_block"]?.intValue, layers >= 1, layers < 1 << 10 else {
            throw SurgeryError(.invalidConfig, "layers_per_block must be one positive integer for an LDM layout", file: file, tensor: "layers_per_block")
        }
        let mid = config["mid_block_type"]?.stringValue ?? "UNetMidBlock2DCrossAttn"
        return LDMLayout.UNetStructure(blocks: down.count, layersPerBlock: layers,
                                       downAttention: down.map { $0.hasPrefix("CrossAttn") },
                                       upAttention: up.map { $0.hasPrefix("CrossAttn") },
                                       midAttention: mid != "UNetMidBlock2D",
                                       addition: config["addition_embed_type"]?.stringValue == "text_time")
    }
}

extension LDMConversion {
    /// Writes a diffusers UNet model folder as a UNet-only original file (LDM names without the
    /// `model.diffusion_model.` prefix, as ComfyUI saves a UNet alone).
    public static func unetToLDM(_ unet: Checkpoint, output: String) throws -> LDMConversionResult {
        let (named, family) = try unetLDMNames(unet)
        var writer = LDMWriter(sources: [unet])
        try writer.write(named.map { LDMOutputTensor.copy($0.entry, as: $0.name) }, to: output)
        try writer.commit()
        var result = LDMConversionResult(family: family, components: ["unet"])
        result.files = writer.files
        result.tensors = writer.tensors
        result.bytesWritten = writer.bytes
        return result
    }

    /// Each tensor of a diffusers UNet with its LDM name (no prefix), in the input's order, and the
    /// family its config describes.
    public static func unetLDMNames(_ unet: Checkpoint) throws -> (tensors: [(entry: TensorEntry, name: String)], family: LDMFamily) {
        let unetConfig = try config(of: unet)
        let structure = try unetStructure(unetConfig, file: unet.name)
        let rules = LDMLayout.unet(structure)
        var tensors: [(entry: TensorEntry, name: String)] = []
        for entry in unet.entries {
            guard let mapped = rules.ldmName(ofDiffusers: entry.name), mapped.transform == .copy else {
                throw SurgeryError(.ldmNoRule, "no row of the UNet key table (formats/ldm.md) maps this tensor", file: unet.name, tensor: entry.name)
            }
            tensors.append((entry, mapped.name))
        }
        let family: LDMFamily = structure.addition ? .sdxl : (unetConfig["use_linear_projection"] == .bool(true) ? .sd2 : .sd1)
        return (tensors, family)
    }
}
