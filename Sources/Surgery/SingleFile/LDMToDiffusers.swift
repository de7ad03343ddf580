import Foundation
import TensorFormats

/// Options of a layout conversion (`convert --layout diffusers|ldm`).
public struct LDMConversionOptions: Sendable {
    /// Take the UNet from the `model_ema.` copies.
    public var ema = false
    /// `epsilon` or `v_prediction`; nil takes the family's default (SD2: v_prediction).
    public var prediction: String?
    /// diffusers weight variant (`fp16` gives `diffusion_pytorch_model.fp16.safetensors`).
    public var variant: String?
    /// CLIP's BPE merges file (`bpe_simple_vocab_16e6.txt`) to build `tokenizer/` (and `tokenizer_2/` for
    /// SDXL) from, or a tokenizer folder (vocab.json, merges.txt, ...) to copy; without it the pipeline
    /// lists no tokenizer.
    public var tokenizer: String?

    public init(ema: Bool = false, prediction: String? = nil, variant: String? = nil, tokenizer: String? = nil) {
        self.ema = ema
        self.prediction = prediction
        self.variant = variant
        self.tokenizer = tokenizer
    }
}

public struct LDMConversionResult: Sendable {
    public var family: LDMFamily
    public var components: [String] = []
    public var files: [String] = []
    public var tensors = 0
    public var bytesWritten = 0
    /// Input tensors no component holds (training state such as the schedule buffers, EMA copies).
    public var skipped: [String] = []
}

public enum LDMConversion {
    /// A weight file name with diffusers' variant infix: `model.safetensors` -> `model.fp16.safetensors`.
    public static func weightsName(_ base: String, variant: String?) -> String {
        guard let variant, !variant.isEmpty else { return base + ".safetensors" }
        return base + "." + variant + ".safetensors"
    }

    /// Writes a diffusers pipeline folder (or, for a UNet-only file, a UNet model folder) from an
    /// original single-file checkpoint.
    public static func toDiffusers(_ checkpoint: Checkpoint, folder: String, options: LDMConversionOptions) throws -> LDMConversionResult {
        let index = TensorIndex(checkpoint)
        let file = checkpoint.name
        let unetPrefix: String
        if index.has(prefix: LDMKeyTable.unetPrefix) {
            unetPrefix = LDMKeyTable.unetPrefix
        } else if index.byName["input_blocks.0.0.weight"] != nil {
            unetPrefix = ""
        } else {
            throw SurgeryError(.ldmUnknownFamily, "no UNet: neither model.diffusion_model.* (a full single file) nor input_blocks.0.0.weight (a UNet alone)",
                                    file: file, tensor: LDMKeyTable.unetPrefix + "input_blocks.0.0.weight")
        }
        let unetOnly = unetPrefix.isEmpty
        let structure = try LDMInference.unetStructure(index, prefix: unetPrefix)
        let family = try LDMInference.unetFamily(index, prefix: unetPrefix, structure: structure)
        if !unetOnly, let textFamily = textFamily(index), textFamily != family {
            throw SurgeryError(.ldmUnknownFamily, "the UNet is \(family.rawValue)-shaped but the text encoder is \(textFamily.rawValue)'s", file: file)
        }
        let prediction = options.prediction ?? family.defaultPrediction
        var result = LDMConversionResult(family: family)
        var claimed = Set<String>()

        // UNet, from the EMA copies when asked.
        let unetRules = LDMLayout.unet(structure)
        let hasEMA = index.has(prefix: LDMKeyTable.emaPrefix)
        if options.ema && !hasEMA {
            throw SurgeryError(.ldmMissingTensor, "--ema: the file has no model_ema.* weights", file: file, tensor: LDMKeyTable.emaPrefix + "diffusion_modelinput_blocks00weight")
        }
        var unet: [LDMOutputTensor] = []
        for entry in checkpoint.entries where entry.name.hasPrefix(unetPrefix) && !(unetOnly && isTrainingState(entry.name)) {
            let local = String(entry.name.dropFirst(unetPrefix.count))
            guard let mapped = unetRules.diffusersName(ofLDM: local) else {
                throw SurgeryError(.ldmNoRule, "no row of the UNet key table (formats/ldm.md) maps this tensor", file: file, tensor: entry.name)
            }
            var source = entry
            if options.ema {
                let emaName = LDMKeyTable.emaPrefix + ("diffusion_model." + local).replacingOccurrences(of: ".", with: "")
                guard let ema = index.byName[emaName] else {
                    throw SurgeryError(.ldmMissingTensor, "--ema: no EMA copy of \(entry.name)", file: file, tensor: emaName)
                }
                guard ema.shape == entry.shape else {
                    throw SurgeryError(.ldmShapeContradiction, "EMA copy has shape \(ema.shape), the weight \(entry.shape)", file: file, tensor: emaName)
                }
                source = ema
                claimed.insert(emaName)
            }
            claimed.insert(entry.name)
            unet.append(.copy(source, as: mapped.name))
        }
        let pooled = index.byName["conditioner.embedders.1.model.text_projection"].flatMap { $0.shape.count == 2 ? $0.shape[1] : nil }
        let unetConfig = try LDMInference.unetConfig(index, prefix: unetPrefix, structure: structure, family: family, prediction: prediction, pooledDim: pooled)

        var writer = LDMWriter(sources: [checkpoint])
        try OutputFile.createFolder(folder)
        if unetOnly {
            try writer.write(unet, to: path(folder, weightsName("diffusion_pytorch_model", variant: options.variant)), metadata: Metadata([("format", "pt")]))
            try writer.writeText(JSONWriter.pretty(unetConfig) + "\n", to: path(folder, "config.json"))
            result.components = ["unet"]
            return try finish(writer, result, checkpoint: checkpoint, claimed: claimed)
        }
        try writeComponent(&writer, folder: folder, name: "unet", tensors: unet, config: unetConfig, weights: "diffusion_pytorch_model", options: options)
        result.components.append("unet")

        if index.has(prefix: LDMKeyTable.vaePrefix) {
            let p = LDMKeyTable.vaePrefix
            let vs = try LDMInference.vaeStructure(index, prefix: p)
            let rules = LDMLayout.vae(vs)
            var vae: [LDMOutputTensor] = []
            for entry in checkpoint.entries where entry.name.hasPrefix(p) && !entry.name.hasPrefix(p + "loss.") {
                guard let mapped = rules.diffusersName(ofLDM: String(entry.name.dropFirst(p.count))) else {
                    throw SurgeryError(.ldmNoRule, "no row of the VAE key table (formats/ldm.md) maps this tensor", file: file, tensor: entry.name)
                }
                var shape = entry.shape
                if mapped.transform == .squeezeConv, shape.count > 2, shape.dropFirst(2).allSatisfy({ $0 == 1 }) { shape = Array(shape.prefix(2)) }
                vae.append(.copy(entry, as: mapped.name, shape: shape))
                claimed.insert(entry.name)
            }
            let config = try LDMInference.vaeConfig(index, prefix: p, structure: vs, family: family, prediction: prediction)
            try writeComponent(&writer, folder: folder, name: "vae", tensors: vae, config: config, weights: "diffusion_pytorch_model", options: options)
            result.components.append("vae")
        }

        for encoder in textEncoders(family) where index.has(prefix: encoder.prefix) {
            let (tensors, copies) = try mapText(index, encoder: encoder, claimed: &claimed)
            let projection = encoder.projection ? index.byName[encoder.prefix + "text_projection"]?.shape.last : nil
            let config = try LDMInference.clipConfig(index, names: copies, activation: encoder.openCLIP ? "gelu" : "quick_gelu",
                                                     projection: encoder.projection ? (projection ?? 1280) : nil, file: file)
            try writeComponent(&writer, folder: folder, name: encoder.component, tensors: tensors, config: config, weights: "model", options: options)
            result.components.append(encoder.component)
        }
        if let tokenizer = options.tokenizer {
            for name in family == .sdxl ? ["tokenizer", "tokenizer_2"] : ["tokenizer"] {
                // SDXL's second tokenizer pads with "!" (id 0), the others with <|endoftext|>.
                try writeTokenizer(from: tokenizer, to: path(folder, name), padToken: name == "tokenizer_2" ? "!" : "<|endoftext|>", writer: &writer)
                result.components.append(name)
            }
        }
        try OutputFile.createFolder(path(folder, "scheduler"))
        try writer.writeText(JSONWriter.pretty(LDMInference.schedulerConfig(family, prediction: prediction)) + "\n", to: path(folder, "scheduler/scheduler_config.json"))
        result.components.append("scheduler")
        try writer.writeText(JSONWriter.pretty(modelIndex(family, components: Set(result.components))) + "\n", to: path(folder, "model_index.json"))
        return try finish(writer, result, checkpoint: checkpoint, claimed: claimed)
    }

    // MARK: Pieces

    struct TextEncoder {
        var component: String
        var prefix: String
        var openCLIP: Bool
        var projection: Bool
        /// Where transformers names start (`text_model.` inside CLIPTextModelWithProjection).
        var base: String
    }

    static func textEncoders(_ family: LDMFamily) -> [TextEncoder] {
        switch family {
        case .sd1: return [TextEncoder(component: "text_encoder", prefix: LDMKeyTable.sd1TextPrefix, openCLIP: false, projection: false, base: "")]
        case .sd2: return [TextEncoder(component: "text_encoder", prefix: LDMKeyTable.sd2TextPrefix, openCLIP: true, projection: false, base: "")]
        case .sdxl: return [
            TextEncoder(component: "text_encoder", prefix: LDMKeyTable.sdxlTextPrefix, openCLIP: false, projection: false, base: ""),
            TextEncoder(component: "text_encoder_2", prefix: LDMKeyTable.sdxlText2Prefix, openCLIP: true, projection: true, base: "text_model."),
        ]
        }
    }

    static func textFamily(_ index: TensorIndex) -> LDMFamily? {
        if index.has(prefix: "conditioner.embedders.") { return .sdxl }
        if index.has(prefix: LDMKeyTable.sd2TextPrefix) { return .sd2 }
        if index.has(prefix: "cond_stage_model.transformer.") { return .sd1 }
        return nil
    }

    static func textRules(_ encoder: TextEncoder, layers: Int) -> [LDMBlockRule] {
        encoder.openCLIP
            ? LDMLayout.openCLIP(prefix: "", base: encoder.base, layers: layers, projection: encoder.projection)
            : LDMLayout.huggingFaceCLIP(prefix: "")
    }

    /// A text encoder's tensors, and the plain copies by transformers name (what its config is read from).
    static func mapText(_ index: TensorIndex, encoder: TextEncoder, claimed: inout Set<String>) throws -> ([LDMOutputTensor], [String: TensorEntry]) {
        let file = index.checkpoint.name
        let ignored = encoder.component == "text_encoder" && encoder.openCLIP ? LDMKeyTable.sd2Ignored : []
        let layers = index.indices(after: encoder.prefix + "transformer.resblocks.").count
        guard layers <= 1024 else {
            throw index.contradiction("text encoder has \(layers) residual blocks, beyond any CLIP (at most 1024)", tensor: encoder.prefix + "transformer.resblocks.0.ln_1.weight")
        }
        let rules = textRules(encoder, layers: layers)
        var tensors: [LDMOutputTensor] = []
        var copies: [String: TensorEntry] = [:]
        for entry in index.checkpoint.entries where entry.name.hasPrefix(encoder.prefix) {
            let local = String(entry.name.dropFirst(encoder.prefix.count))
            if local.hasSuffix("position_ids") || isTrainingState(entry.name) || ignored.contains(where: { local.hasPrefix($0) }) { continue }
            guard let mapped = rules.diffusersName(ofLDM: local) else {
                throw SurgeryError(.ldmNoRule, "no row of the text encoder key table (formats/ldm.md) maps this tensor", file: file, tensor: entry.name)
            }
            claimed.insert(entry.name)
            switch mapped.transform {
            case .fusedQKV:
                tensors += try LDMOutputTensor.splitQKV(entry, names: ["q", "k", "v"].map { mapped.name.replacingOccurrences(of: "{}", with: $0) }, file: file)
            case .transpose:
                tensors.append(try LDMOutputTensor.transpose(entry, as: mapped.name, file: file))
            case .copy, .squeezeConv:
                tensors.append(.copy(entry, as: mapped.name))
                copies[mapped.name] = entry
            }
        }
        return (tensors, copies)
    }

    static func writeComponent(_ writer: inout LDMWriter, folder: String, name: String, tensors: [LDMOutputTensor], config: JSONValue,
                               weights: String, options: LDMConversionOptions) throws {
        let directory = path(folder, name)
        try OutputFile.createFolder(directory)
        try writer.write(tensors, to: path(directory, weightsName(weights, variant: options.variant)), metadata: Metadata([("format", "pt")]))
        try writer.writeText(JSONWriter.pretty(config) + "\n", to: path(directory, "config.json"))
    }

    /// A tokenizer folder: built from CLIP's BPE merges file when `source` is a file, else the files
    /// transformers' CLIPTokenizer reads copied from the folder `source`.
    static func writeTokenizer(from source: String, to directory: String, padToken: String, writer: inout LDMWriter) throws {
        try OutputFile.createFolder(directory)
        guard Files.exists(source) else {
            throw SurgeryError(.notFound, "no such tokenizer folder or BPE file", file: source)
        }
        if !Files.isDirectory(source) {
            let bytes = try MappedFile.contents(of: source)
            guard bytes.count < 64 << 20, let text = String(validating: bytes, as: UTF8.self) else {
                throw SurgeryError(.invalidConfig, "a CLIP BPE file is UTF-8 text of a few MB (gunzip open_clip's bpe_simple_vocab_16e6.txt.gz first)", file: source)
            }
            for (name, content) in try CLIPVocabulary.tokenizerFiles(bpe: text, padToken: padToken, file: source) {
                try writer.writeText(content, to: path(directory, name))
            }
            return
        }
        var found = 0
        for name in ["vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json", "tokenizer.json"] {
            let from = path(source, name)
            guard Files.exists(from) else { continue }
            guard let text = String(validating: try MappedFile.contents(of: from), as: UTF8.self) else {
                throw SurgeryError(.invalidConfig, "tokenizer file is not UTF-8", file: from)
            }
            try writer.writeText(text, to: path(directory, name))
            found += 1
        }
        guard Files.exists(path(source, "vocab.json")), Files.exists(path(source, "merges.txt")) else {
            throw SurgeryError(.notFound, "a CLIP tokenizer folder needs vocab.json and merges.txt (found \(found) tokenizer files)", file: source)
        }
    }

    static func modelIndex(_ family: LDMFamily, components: Set<String>) -> JSONValue {
        func entry(_ name: String, _ library: String, _ type: String) -> JSONMember {
            JSONMember(name, components.contains(name) ? .strings([library, type]) : .array([.null, .null]))
        }
        var members = [
            JSONMember("_class_name", .string(family.pipelineClass)),
            JSONMember("_diffusers_version", .string("0.42.1")),
            JSONMember("feature_extractor", .array([.null, .null])),
            JSONMember("image_encoder", .array([.null, .null])),
            entry("scheduler", "diffusers", family.schedulerClass),
            entry("text_encoder", "transformers", "CLIPTextModel"),
            entry("tokenizer", "transformers", "CLIPTokenizer"),
            entry("unet", "diffusers", "UNet2DConditionModel"),
            entry("vae", "diffusers", "AutoencoderKL"),
        ]
        if family == .sdxl {
            members += [
                entry("text_encoder_2", "transformers", "CLIPTextModelWithProjection"),
                entry("tokenizer_2", "transformers", "CLIPTokenizer"),
                JSONMember("force_zeros_for_empty_prompt", .bool(true)),
            ]
        } else {
            members += [JSONMember("safety_checker", .array([.null, .null])), JSONMember("requires_safety_checker", .bool(false))]
        }
        return .object(members)
    }

    static func isTrainingState(_ name: String) -> Bool {
        LDMKeyTable.trainingStatePrefixes.contains { name == $0 || (name.hasPrefix($0) && ($0.hasSuffix(".") || name.dropFirst($0.count).first == ".")) }
    }

    static func finish(_ writer: LDMWriter, _ partial: LDMConversionResult, checkpoint: Checkpoint, claimed: Set<String>) throws -> LDMConversionResult {
        try checkpoint.finish()
        try writer.commit()
        var result = partial
        result.files = writer.files
        result.tensors = writer.tensors
        result.bytesWritten = writer.bytes
        result.skipped = checkpoint.entries.map(\.name).filter { !claimed.contains($0) }
        return result
    }

    static func path(_ folder: String, _ name: String) -> String {
        (folder.hasSuffix("/") ? folder : folder + "/") + name
    }
}
