import ArgumentParser
import ModelGraph
import ONNX
import TensorFormats
import Workflows

extension VAEGraph.Part: ExpressibleByArgument {}

/// Options of `convert … out.onnx` / `--to onnx` (formats/onnx.md).
struct ONNXOptions: ParsableArguments {
    @Option(name: .customLong("static"), help: ArgumentHelp("ONNX output: fixed input shapes BATCHxHxW instead of named dims (a UNet file: its latent sides; a VAE or a pipeline: the image's).",
                                                            valueName: "BxHxW"))
    var staticShape: String?

    @Option(help: "ONNX output of a VAE: the half to write (encoder or decoder).")
    var part: VAEGraph.Part?

    @Option(help: ArgumentHelp("ONNX pipeline output: the UNet to ship instead of the pipeline's own (a pruned or unlearned student).", valueName: "model"))
    var unet: String?

    @Flag(name: .customLong("external-data"), help: "ONNX output: weights in model.onnx_data beside the model even below 2 GB.")
    var externalData = false

    @Option(name: .customLong("block-size"), help: ArgumentHelp("ONNX output with --quant: inputs per quantization block (16, 32, 64, 128 or 256; default 32).",
                                                                valueName: "n"))
    var blockSize: Int?

    /// BATCHxHxW as three positive integers.
    var fixedShape: (batch: Int, height: Int, width: Int)? {
        guard let staticShape else { return nil }
        let parts = staticShape.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 3, let b = parts[0], let h = parts[1], let w = parts[2],
              (1...4096).contains(b), (1...65536).contains(h), (1...65536).contains(w) else { return nil }
        return (b, h, w)
    }

    var given: Bool { staticShape != nil || part != nil || unet != nil || externalData || blockSize != nil }

    /// The options, with `quant` (convert's --quant) read as ONNX's weight quantization.
    func options(quant: String?) -> ONNXExportOptions {
        var o = ONNXExportOptions()
        o.quantization = quant.flatMap(WeightQuantization.Precision.init(rawValue:)).map {
            WeightQuantization(precision: $0, blockSize: blockSize ?? WeightQuantization.defaultBlockSize)
        }
        o.unet = unet
        o.part = part
        o.io = IOShape(fixed: fixedShape)
        o.externalData = externalData
        return o
    }
}

extension ConvertCommand {
    /// Usage rules of ONNX output: its options only with it, and only the options it takes.
    func validateONNX() throws {
        guard outputFormat == .onnx else {
            if onnx.given { throw ValidationError("--static, --part, --unet, --external-data and --block-size apply to ONNX output (.onnx or --to onnx)") }
            return
        }
        if onnx.staticShape != nil && onnx.fixedShape == nil {
            throw ValidationError("--static takes BATCHxHxW, three positive integers (got '\(onnx.staticShape!)')")
        }
        if output == "-" { throw ValidationError("ONNX output is written to a file or folder, not standard output") }
        if dtype != nil || !only.isEmpty || !exclude.isEmpty || !rename.isEmpty || shardSize != nil || compress != nil {
            throw ValidationError("ONNX output takes --static, --part, --unet, --external-data, --quant and --block-size (no --dtype, --only, --exclude, --rename, --shard-size or --compress)")
        }
        if let quant, WeightQuantization.Precision(rawValue: quant) == nil {
            throw ValidationError("--quant for ONNX output is int8 or int4 (got '\(quant)')")
        }
        if let blockSize = onnx.blockSize {
            guard quant != nil else { throw ValidationError("--block-size applies with --quant int8 or int4") }
            guard ONNXQuantBlocks.matMulNBitsBlockSizes.contains(blockSize) else {
                throw ValidationError("--block-size is one of 16, 32, 64, 128, 256 (got \(blockSize))")
            }
        }
    }
}
