import ArgumentParser
import Surgery
import TensorFormats

/// `convert` to GGUF: the options that apply to it and the write itself.
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

    func writeGGUF(_ plan: ConvertPlan) throws -> ConvertResult {
        try refuseOverwritingInput(output, plan.checkpoint)
        let bar = ProgressBar("convert", total: plan.tensors.reduce(0) { $0 + $1.source.byteCount }, quiet: common.quiet)
        defer { bar.finish() }
        var result = ConvertResult()
        let out = try OutputFile(path: output, force: binary.force)
        try Converter.writeGGUF(plan, quant: quant.flatMap(GGMLType.init(userName:)), metadata: plan.metadata(embedConfig: true),
                                to: out, progress: bar.update, result: &result)
        try plan.checkpoint.finish()
        try out.commit()
        result.files.append(output)
        return result
    }
}
