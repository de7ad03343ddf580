import TensorFormats
import TensorMath

/// The two key dialects a Stable Diffusion UNet LoRA is shipped in (formats/lora.md).
public enum LoRADialect: String, Sendable, CaseIterable {
    /// diffusers' own (PEFT) keys, what `pipe.load_lora_weights` reads natively:
    /// `unet.<module>.lora_A.weight` [r, in(, kh, kw)] and `unet.<module>.lora_B.weight` [out, r(, 1, 1)].
    case peft
    /// kohya-ss sd-scripts' keys, read by A1111, ComfyUI and diffusers' kohya converter:
    /// `lora_unet_<module with . as _>.lora_down.weight`, `.lora_up.weight` and the scalar `.alpha`.
    case kohya
}

/// One adapted weight: ΔW = (alpha / rank)·up·down, `module` the diffusers module name (the weight's
/// name without `.weight`).
public struct LoRAFactor: Sendable {
    public var module: String
    /// [r, in] or [r, in, kh, kw].
    public var down: Tensor
    /// [out, r] or [out, r, 1, 1].
    public var up: Tensor
    public var alpha: Float

    public var rank: Int { down.shape[0] }

    public init(module: String, down: Tensor, up: Tensor, alpha: Float) {
        self.module = module
        self.down = down
        self.up = up
        self.alpha = alpha
    }
}

/// What a LoRA file holds that no UNet module of either dialect names: refused, never dropped.
extension ErrorCode {
    public static let loraUnmappedKey = ErrorCode(rawValue: "lora-unmapped-key")
}

public enum LoRAAdapter {
    /// The truncated SVD of `edited − base` (a linear weight [out, in], or a convolution [out, in, kh, kw]
    /// flattened to [out, in·kh·kw] as kohya and PEFT do): ΔW ≈ up·down with up = U_r·√S_r and
    /// down = √S_r·V_rᵀ, alpha = r (scale 1). Also returns the relative Frobenius error of the truncation,
    /// √(Σ_{i≥r} s_i²) / √(Σ s_i²).
    public static func factor(module: String, base: Tensor, edited: Tensor, rank: Int) throws(LinearAlgebra.Failure) -> (LoRAFactor, error: Double) {
        let out = base.shape[0], columns = base.count / max(out, 1)
        var delta = [Double](repeating: 0, count: base.count)
        for i in 0..<base.count { delta[i] = Double(edited.data[i]) - Double(base.data[i]) }
        let (u, s, vt) = try LinearAlgebra.svd(delta, rows: out, columns: columns)
        let k = s.count, r = max(1, min(rank, k))
        var up = [Float](repeating: 0, count: out * r), down = [Float](repeating: 0, count: r * columns)
        for j in 0..<r {
            let root = s[j].squareRoot()
            for i in 0..<out { up[i * r + j] = Float(u[i * k + j] * root) }
            for c in 0..<columns { down[j * columns + c] = Float(vt[j * columns + c] * root) }
        }
        let total = s.reduce(0) { $0 + $1 * $1 }, dropped = s.dropFirst(r).reduce(0) { $0 + $1 * $1 }
        let conv = base.shape.count == 4
        let factor = LoRAFactor(module: module,
                                down: Tensor(shape: conv ? [r] + base.shape.dropFirst() : [r, columns], data: down),
                                up: Tensor(shape: conv ? [out, r, 1, 1] : [out, r], data: up), alpha: Float(r))
        return (factor, total > 0 ? (dropped / total).squareRoot() : 0)
    }

    /// The tensors of `factors` in `dialect`, sorted by name. PEFT has no alpha: a factor whose alpha is
    /// not its rank has the scale alpha/rank folded into `up`, so both dialects load to the same ΔW.
    public static func tensors(_ factors: [LoRAFactor], dialect: LoRADialect) -> [(name: String, shape: [Int], values: [Float])] {
        var out: [(name: String, shape: [Int], values: [Float])] = []
        for f in factors {
            switch dialect {
            case .peft:
                let scale = f.alpha / Float(f.rank)
                out.append(("unet.\(f.module).lora_A.weight", f.down.shape, f.down.data))
                out.append(("unet.\(f.module).lora_B.weight", f.up.shape, scale == 1 ? f.up.data : f.up.data.map { $0 * scale }))
            case .kohya:
                let name = kohyaName(f.module)
                out.append((name + ".lora_down.weight", f.down.shape, f.down.data))
                out.append((name + ".lora_up.weight", f.up.shape, f.up.data))
                out.append((name + ".alpha", [], [f.alpha]))
            }
        }
        return out.sorted { $0.name < $1.name }
    }

    /// `lora_unet_` and the module name with every `.` as `_` (kohya-ss's spelling of diffusers names,
    /// the keys ComfyUI's `model_lora_keys_unet` and diffusers' `_convert_unet_lora_key` accept).
    public static func kohyaName(_ module: String) -> String {
        "lora_unet_" + module.replacingOccurrences(of: ".", with: "_")
    }

    /// The words of diffusers UNet module names that contain `_`, longest first: a kohya name is split on
    /// `_` and these are joined back; every other word must be a plain word of `words` or a number.
    static let compounds: [[String]] = [
        ["time", "emb", "proj"], ["conv", "norm", "out"], ["down", "blocks"], ["up", "blocks"], ["mid", "block"],
        ["transformer", "blocks"], ["to", "q"], ["to", "k"], ["to", "v"], ["to", "out"], ["proj", "in"], ["proj", "out"],
        ["conv", "in"], ["conv", "out"], ["conv", "shortcut"], ["time", "embedding"], ["linear", "1"], ["linear", "2"],
        ["add", "embedding"],
    ]
    static let words: Set<String> = [
        "attentions", "resnets", "downsamplers", "upsamplers", "attn1", "attn2", "norm", "norm1", "norm2", "norm3", "ff", "net",
        "proj", "conv", "conv1", "conv2", "time_emb_proj", "conv_norm_out", "down_blocks", "up_blocks", "mid_block",
        "transformer_blocks", "to_q", "to_k", "to_v", "to_out", "proj_in", "proj_out", "conv_in", "conv_out", "conv_shortcut",
        "time_embedding", "linear_1", "linear_2", "add_embedding",
    ]

    /// The diffusers module name of a kohya `lora_unet_…` name, nil when a word is not a diffusers UNet
    /// word (SDXL's sgm `input_blocks` names, LyCORIS, text-encoder keys).
    public static func module(kohya name: String) -> String? {
        guard name.hasPrefix("lora_unet_") else { return nil }
        let parts = name.dropFirst("lora_unet_".count).split(separator: "_", omittingEmptySubsequences: false).map(String.init)
        var segments: [String] = []
        var i = 0
        while i < parts.count {
            if let joined = compounds.first(where: { c in i + c.count <= parts.count && Array(parts[i..<i + c.count]) == c }) {
                segments.append(joined.joined(separator: "_"))
                i += joined.count
            } else {
                segments.append(parts[i])
                i += 1
            }
        }
        guard segments.allSatisfy({ words.contains($0) || (!$0.isEmpty && $0.allSatisfy(\.isNumber)) }) else { return nil }
        return segments.joined(separator: ".")
    }

    /// The factors of a LoRA file of either dialect (`named`: every tensor, as float32). Every key must be
    /// a down, up or alpha of a UNet module with both its down and up; the first that is not is thrown
    /// (`lora-unmapped-key`), so no weight is silently dropped.
    public static func read(_ named: [String: Tensor], file: String) throws -> (factors: [LoRAFactor], dialect: LoRADialect) {
        var downs: [String: Tensor] = [:], ups: [String: Tensor] = [:], alphas: [String: Float] = [:]
        var dialects = Set<LoRADialect>()
        func unmapped(_ key: String, _ why: String) -> TensorFormatError {
            TensorFormatError(.loraUnmappedKey, why, file: file, tensor: key)
        }
        for key in named.keys.sorted() {
            let tensor = named[key]!
            if key.hasPrefix("unet."), let suffix = [".lora_A.weight", ".lora_B.weight"].first(where: key.hasSuffix) {
                let module = String(key.dropFirst("unet.".count).dropLast(suffix.count))
                guard module.split(separator: ".").allSatisfy({ words.contains(String($0)) || $0.allSatisfy(\.isNumber) }) else {
                    throw unmapped(key, "not a UNet module of diffusers' PEFT keys")
                }
                if suffix == ".lora_A.weight" { downs[module] = tensor } else { ups[module] = tensor }
                dialects.insert(.peft)
            } else if let suffix = [".lora_down.weight", ".lora_up.weight", ".alpha"].first(where: key.hasSuffix) {
                guard let module = module(kohya: String(key.dropLast(suffix.count))) else {
                    throw unmapped(key, "not a kohya UNet key this converter maps (lora_unet_ + a diffusers module name)")
                }
                switch suffix {
                case ".lora_down.weight": downs[module] = tensor
                case ".lora_up.weight": ups[module] = tensor
                default:
                    guard tensor.count == 1 else { throw unmapped(key, "an alpha of \(tensor.count) values") }
                    alphas[module] = tensor.data[0]
                }
                dialects.insert(.kohya)
            } else {
                throw unmapped(key, "neither a PEFT (unet.….lora_A/lora_B.weight) nor a kohya (lora_unet_….lora_down/lora_up.weight, .alpha) key")
            }
        }
        guard dialects.count == 1, let dialect = dialects.first else {
            throw TensorFormatError(.loraUnmappedKey, dialects.isEmpty ? "no LoRA tensors" : "PEFT and kohya keys in one file", file: file)
        }
        var factors: [LoRAFactor] = []
        for module in Set(downs.keys).union(ups.keys).union(alphas.keys).sorted() {
            let key = dialect == .peft ? "unet.\(module).lora_A.weight" : kohyaName(module) + ".lora_down.weight"
            guard let down = downs[module], let up = ups[module] else { throw unmapped(key, "a module without both its down and up weights") }
            guard down.shape.count >= 2, up.shape.count >= 2, up.shape[1] == down.shape[0] else {
                throw unmapped(key, "down \(down.shape) and up \(up.shape) do not compose")
            }
            factors.append(LoRAFactor(module: module, down: down, up: up, alpha: alphas[module] ?? Float(down.shape[0])))
        }
        return (factors, dialect)
    }
}
