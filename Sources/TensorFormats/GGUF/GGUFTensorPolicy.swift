/// Which ggml type and stored shape each tensor gets in a GGUF output: ComfyUI-GGUF's rules
/// (tools/convert.py), so its loader and stable-diffusion.cpp read our files as they read theirs.
public enum GGUFTensorPolicy {
    /// ComfyUI-GGUF's `QUANTIZATION_THRESHOLD`: tensors this small stay in float.
    public static let smallTensorElements = 1024
    /// ComfyUI-GGUF's `REARRANGE_THRESHOLD`.
    public static let reshapeMinimumElements = 512
    public static let reshapeRow = 256
    /// Weights ComfyUI-GGUF keeps in float (embeddings of time, class and conditioning).
    public static let keepFloatSubstrings = ["time_embedding.", "add_embedding.", "time_in.", "txt_in.", "vector_in.",
                                            "img_in.", "guidance_in.", "final_layer."]

    /// The stored type, stored shape and recorded original shape for one tensor; `target` nil keeps
    /// each tensor's own type. Float tensors with 1 dimension, at most 1024 elements, or a name in
    /// `keepFloatSubstrings` (with `.weight`) stay F32 (F16 when the source is F16) under a quantized or
    /// narrower target. A quantized tensor whose last dimension is not a whole number of blocks is
    /// stored as rows of 256 when it has 2+ dimensions, 512+ elements and a multiple of 256; if it still
    /// cannot be blocked it falls back to F16, as ComfyUI-GGUF does.
    public static func choose(name: String, dtype: DType, shape: [Int], target: GGMLType?)
        throws(TensorFormatError) -> (type: GGMLType, storedShape: [Int], originalShape: [Int]?) {
        guard dtype.isFloatingPoint else {
            guard let plain = GGMLType(plain: dtype) else {
                throw TensorFormatError(.unsupported, "GGUF has no type for \(dtype.rawValue) tensors", tensor: name)
            }
            return (plain, shape, nil)
        }
        guard var type = target else {
            return (GGMLType(plain: dtype) ?? .f32, shape, nil)
        }
        let elements = shape.reduce(1, *)
        let keepFloat = shape.count <= 1 || elements <= smallTensorElements
            || (name.contains(".weight") && keepFloatSubstrings.contains { name.contains($0) })
        if keepFloat && type != .f32 { type = dtype == .f16 ? .f16 : .f32 }
        guard type.isQuantized, (shape.last ?? 1) % type.blockSize != 0 else { return (type, shape, nil) }
        if shape.count > 1 && elements >= reshapeMinimumElements && elements % reshapeRow == 0 {
            return (type, [elements / reshapeRow, reshapeRow], shape)
        }
        return (.f16, shape, nil)
    }

    /// `general.architecture` from the tensor names, as ComfyUI-GGUF detects SD1 and SDXL UNets
    /// (diffusers or LDM names); anything else is `unet`.
    public static func architecture(names: Set<String>) -> String {
        let sdxl = [["down_blocks.0.downsamplers.0.conv.weight", "add_embedding.linear_1.weight"],
                    ["input_blocks.3.0.op.weight", "input_blocks.6.0.op.weight", "output_blocks.2.2.conv.weight", "output_blocks.5.2.conv.weight"],
                    ["label_emb.0.0.weight"]]
        let sd1 = [["down_blocks.0.downsamplers.0.conv.weight"],
                   ["input_blocks.3.0.op.weight", "input_blocks.6.0.op.weight", "input_blocks.9.0.op.weight",
                    "output_blocks.2.1.conv.weight", "output_blocks.5.2.conv.weight", "output_blocks.8.2.conv.weight"]]
        let stripped = Set(names.map { name in
            for prefix in ["model.diffusion_model.", "model."] where name.hasPrefix(prefix) { return String(name.dropFirst(prefix.count)) }
            return name
        })
        if sdxl.contains(where: { $0.allSatisfy(stripped.contains) }) { return "sdxl" }
        if sd1.contains(where: { $0.allSatisfy(stripped.contains) }) { return "sd1" }
        return "unet"
    }
}
