import TensorFormats

extension LDMConversion {
    /// The UNet of an original-layout checkpoint (a single file with `model.diffusion_model.*`, a UNet
    /// alone such as a ComfyUI-GGUF file) seen as a diffusers UNet: diffusers names and the config
    /// inferred from the shapes, as `--layout diffusers` writes them, without writing anything. Nil
    /// when the checkpoint has a config or no original UNet names: it is read as it is.
    public static func diffusersUNetView(of checkpoint: Checkpoint) throws -> Checkpoint? {
        guard checkpoint.configJSON == nil else { return nil }
        let index = TensorIndex(checkpoint)
        let prefix: String
        if index.byName["input_blocks.0.0.weight"] != nil {
            prefix = ""
        } else if index.byName[LDMKeyTable.unetPrefix + "input_blocks.0.0.weight"] != nil {
            prefix = LDMKeyTable.unetPrefix
        } else {
            return nil
        }
        let structure = try LDMInference.unetStructure(index, prefix: prefix)
        let family = try LDMInference.unetFamily(index, prefix: prefix, structure: structure)
        let rules = LDMLayout.unet(structure)
        var tensors: [(entry: TensorEntry, name: String)] = []
        for entry in checkpoint.entries where entry.name.hasPrefix(prefix) && !isTrainingState(entry.name) {
            let local = String(entry.name.dropFirst(prefix.count))
            guard let mapped = rules.diffusersName(ofLDM: local), mapped.transform == .copy else {
                throw SurgeryError(.ldmNoRule, "no row of the UNet key table (formats/ldm.md) maps this tensor", file: checkpoint.name, tensor: entry.name)
            }
            tensors.append((entry, mapped.name))
        }
        let pooled = index.byName["conditioner.embedders.1.model.text_projection"].flatMap { $0.shape.count == 2 ? $0.shape[1] : nil }
        let config = try LDMInference.unetConfig(index, prefix: prefix, structure: structure, family: family,
                                                 prediction: family.defaultPrediction, pooledDim: pooled)
        return try checkpoint.renamed(tensors, configJSON: JSONWriter.pretty(config))
    }
}
