/// Which ggml type and stored shape each tensor of an SD UNet gets in a GGUF with original (LDM)
/// names, `convert --layout ldm`: the route ComfyUI-GGUF publishes. Its `tools/convert.py` writes an
/// F16 (BF16 for a BF16 source) file with 1-D and small tensors at F32 and tensors reshaped to rows of
/// 256; its patched `llama-quantize` (`tools/lcpp.patch`) then quantizes the 2-D weights of that file,
/// except the embeddings and the outer convolutions, with the feed-forward output projections one
/// step up under q4_0 and q5_0. Quantized values are those of the F16 file, so the result is the
/// two-step route's bytes (formats/gguf.md).
public enum GGUFComfySDPolicy {
    public struct Choice: Sendable, Equatable {
        public var type: GGMLType
        /// Torch order.
        public var storedShape: [Int]
        /// Recorded as `comfy.gguf.orig_shape.NAME` when the tensor is stored reshaped.
        public var originalShape: [Int]?
        /// The float type convert.py's file holds a quantized tensor in: its values are rounded
        /// through it before they are quantized, as llama-quantize reads them from that file.
        public var intermediate: GGMLType?

        public init(type: GGMLType, storedShape: [Int], originalShape: [Int]?, intermediate: GGMLType?) {
            self.type = type
            self.storedShape = storedShape
            self.originalShape = originalShape
            self.intermediate = intermediate
        }
    }

    /// Substrings and names lcpp.patch keeps out of quantization for `sd1` and `sdxl`.
    public static let keptSubstrings = ["class_embedding.", "time_embedding.", "add_embedding.", "time_embed.", "label_emb.",
                                        "conv_in.", "conv_out."]
    public static let keptNames: Set<String> = ["input_blocks.0.0.weight", "out.2.weight"]
    /// lcpp.patch's feed-forward rule, in the spelling SD's LDM names use.
    public static let feedForwardOutput = ".ff.net.2.weight"

    /// The type convert.py stores a float tensor as (`target` f32/f16/bf16 replaces its F16/BF16
    /// choice for the bulk; a quantized `target` then applies llama-quantize's rules on top).
    public static func choose(name: String, dtype: DType, shape: [Int], target: GGMLType?) throws(TensorFormatError) -> Choice {
        guard dtype.isFloatingPoint else {
            guard let plain = GGMLType(plain: dtype) else {
                throw TensorFormatError(.unsupported, "GGUF has no type for \(dtype.rawValue) tensors", tensor: name)
            }
            return Choice(type: plain, storedShape: shape, originalShape: nil, intermediate: nil)
        }
        guard shape.count <= 4 else {
            throw TensorFormatError(.unsupported, "\(shape.count) dimensions; ggml holds at most 4", tensor: name)
        }
        let elements = shape.reduce(1, *)
        // convert.py: BF16 sources stay BF16, everything else becomes F16; F32 and BF16 sources keep
        // 1-D and small tensors at F32 (an F16 source keeps them F16).
        var stage: GGMLType = dtype == .bf16 ? .bf16 : .f16
        switch target {
        case .f32?: stage = .f32
        case .f16?: stage = .f16
        case .bf16?: stage = .bf16
        default: break
        }
        let wide = dtype == .f32 || dtype == .bf16 || dtype == .f64
        if wide && (shape.count == 1 || elements <= GGUFTensorPolicy.smallTensorElements) { stage = .f32 }
        var stored = shape
        var original: [Int]?
        if shape.count > 1 && elements >= GGUFTensorPolicy.reshapeMinimumElements
            && elements % GGUFTensorPolicy.reshapeRow == 0 && shape[shape.count - 1] % GGUFTensorPolicy.reshapeRow != 0 {
            stored = [elements / GGUFTensorPolicy.reshapeRow, GGUFTensorPolicy.reshapeRow]
            original = shape
        }
        var choice = Choice(type: stage, storedShape: stored, originalShape: original, intermediate: nil)
        guard let target, target.isQuantized, quantizes(name: name, storedShape: stored, stage: stage) else { return choice }
        var type = target
        if name.hasSuffix(feedForwardOutput) {
            if target == .q4_0 { type = .q4_1 }
            if target == .q5_0 { type = .q5_1 }
        }
        // A row that is not whole blocks keeps convert.py's type (llama-quantize has no row to cut).
        guard (stored.last ?? 1) % type.blockSize == 0 else { return choice }
        choice.type = type
        choice.intermediate = stage
        return choice
    }

    /// llama-quantize's test for an image model: a `weight`, two dimensions as ggml counts them
    /// (trailing size-1 dimensions do not count), not one of the kept tensors. Tensors convert.py keeps
    /// at F32 (1-D, at most 1024 elements) stay F32 here: the full-size SD UNets have no 2-D weight
    /// that small, and the rule is that small tensors stay in float.
    static func quantizes(name: String, storedShape: [Int], stage: GGMLType) -> Bool {
        guard stage != .f32, name.hasSuffix("weight"), ggmlDimensions(storedShape) == 2 else { return false }
        return !keptNames.contains(name) && !keptSubstrings.contains { name.contains($0) }
    }

    /// ggml's `ggml_n_dims`: the number of dimensions up to the last one larger than 1, in ggml's
    /// order (the torch shape reversed), at least 1.
    public static func ggmlDimensions(_ shape: [Int]) -> Int {
        let ne = Array(shape.reversed())
        return (ne.lastIndex { $0 > 1 } ?? 0) + 1
    }

    /// `general.file_type`: the target's, or convert.py's: BF16 when BF16 is the most common dtype
    /// of the tensors, else F16.
    public static func fileType(target: GGMLType?, dtypes: [DType]) -> UInt32 {
        if let target { return target.fileType }
        var counts: [DType: Int] = [:]
        for dtype in dtypes { counts[dtype, default: 0] += 1 }
        let bf16 = counts[.bf16] ?? 0
        return bf16 > 0 && counts.values.allSatisfy({ $0 <= bf16 }) ? GGMLType.bf16.fileType : GGMLType.f16.fileType
    }
}
