import TensorFormats

extension LDMConversion {
    /// `general.architecture` ComfyUI-GGUF gives a UNet of each family: its convert.py detects SD2
    /// UNets as `sd1` (the same names), and ComfyUI then tells them apart by their shapes;
    /// stable-diffusion.cpp reads no architecture key at all.
    public static func ggufArchitecture(_ family: LDMFamily) -> String {
        family == .sdxl ? "sdxl" : "sd1"
    }

    /// Writes a diffusers UNet as one GGUF with original (LDM) names, laid out as ComfyUI-GGUF lays out
    /// SD UNets (`GGUFComfySDPolicy`, formats/gguf.md): what its convert.py, then its llama-quantize
    /// for a quantized `quant`, would write from the same UNet saved as an original file.
    public static func unetToGGUF(_ unet: Checkpoint, output: OutputFile, quant: GGMLType?,
                                  progress: ProgressSink? = nil) throws -> LDMConversionResult {
        let (named, family) = try unetLDMNames(unet)
        let plan = ConvertPlan(checkpoint: unet, named: named)
        var converted = ConvertResult()
        try Converter.writeGGUF(plan, quant: quant, metadata: nil, convention: .comfySD(architecture: ggufArchitecture(family)),
                                to: output, progress: progress, result: &converted)
        var result = LDMConversionResult(family: family, components: ["unet"])
        result.tensors = converted.tensors
        result.bytesWritten = converted.bytesWritten
        return result
    }
}
