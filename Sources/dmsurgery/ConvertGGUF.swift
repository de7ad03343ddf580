import ArgumentParser
import Surgery
import TensorFormats

/// `convert` to GGUF: the options that apply to it (the write is ConvertWorkflow's).
extension ConvertCommand {
    func validateGGUF() throws {
        guard outputFormat == .gguf else { throw ValidationError("--quant applies to GGUF output only (a .gguf OUT or --to gguf)") }
        if let quant, GGMLType(userName: quant).map(GGMLType.writable.contains) != true {
            throw ValidationError("--quant must be one of \(GGMLType.writable.map { String(describing: $0) }.joined(separator: ", ")) (got '\(quant)')")
        }
        if dtype != nil { throw ValidationError("--dtype does not apply to GGUF output: use --quant") }
        if shardSize != nil { throw ValidationError("--shard-size applies to safetensors output only") }
        if compress != nil || output.lowercased().hasSuffix(".zst") { throw ValidationError("GGUF output is not compressed: use --quant") }
    }

    /// `convert MODEL OUT.gguf --layout ldm`: the UNet (a pipeline's unet/) with original names, as
    /// ComfyUI-GGUF lays SD UNets out (formats/gguf.md).
    func convertUNetToComfyGGUF() throws -> LDMConversionResult {
        let unet: Checkpoint
        if PipelineFolder.isPipeline(input) {
            guard let opened = try PipelineFolder(path: input, variant: inputOptions.variant).open("unet", options: OpenOptions(randomAccess: true)) else {
                throw TensorFormatError(.ldmMissingTensor, "the pipeline has no unet/ with safetensors weights", file: input)
            }
            unet = opened
        } else {
            unet = try openCheckpoint(input, inputOptions, randomAccess: true)
        }
        let out = try OutputFile(path: output, force: binary.force)
        let result = try LDMConversion.unetToGGUF(unet, output: out, quant: quant.flatMap(GGMLType.init(userName:)))
        try unet.finish()
        try out.commit()
        return result
    }
}
