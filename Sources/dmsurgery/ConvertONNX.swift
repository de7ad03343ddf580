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

    /// The options, with convert's --quant (parsed by the format table) as ONNX's weight quantization.
    func options(quant: WeightQuant?) -> ONNXExportOptions {
        var o = ONNXExportOptions()
        o.quantization = quant?.onnxPrecision.map {
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
    /// Usage rules of the ONNX options themselves; which other options ONNX output takes is
    /// `ConvertWorkflow.check`'s table, and --quant's values the format table's.
    func validateONNX() throws {
        guard (try? OutputFormat.resolve(output: output, to: to)) == .onnx else {
            if onnx.given { throw ValidationError("--static, --part, --unet, --external-data and --block-size apply to ONNX output (.onnx or --to onnx)") }
            return
        }
        if onnx.staticShape != nil && onnx.fixedShape == nil {
            throw ValidationError("--static takes BATCHxHxW, three positive integers (got '\(onnx.staticShape!)')")
        }
        if let blockSize = onnx.blockSize {
            guard quant != nil else { throw ValidationError("--block-size applies with --quant int8 or int4") }
            guard ONNXQuantBlocks.matMulNBitsBlockSizes.contains(blockSize) else {
                throw ValidationError("--block-size is one of \(ONNXQuantBlocks.matMulNBitsBlockSizes.map(String.init).joined(separator: ", ")) (got \(blockSize))")
            }
        }
    }
}
