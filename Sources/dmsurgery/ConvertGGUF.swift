import ArgumentParser
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
}
