import ArgumentParser
import Surgery
import TensorFormats
import Workflows

/// Options of `convert --layout diffusers|ldm` (original single files <-> diffusers pipeline folders).
struct LayoutOptions: ParsableArguments {
    @Flag(help: "With --layout diffusers: take the UNet from the model_ema.* weights.")
    var ema = false

    @Option(name: .customLong("prediction-type"), help: ArgumentHelp("With --layout diffusers: epsilon or v_prediction (the weights cannot tell; default: SD2 v_prediction, others epsilon).", valueName: "type"))
    var predictionType: String?

    @Option(help: ArgumentHelp("With --layout diffusers: CLIP's BPE file (bpe_simple_vocab_16e6.txt, gunzipped from open_clip) to build tokenizer/ (and tokenizer_2/) from, or a tokenizer folder to copy.", valueName: "file-or-folder"))
    var tokenizer: String?

    func validate() throws {
        if let predictionType, !["epsilon", "v_prediction"].contains(predictionType) {
            throw ValidationError("--prediction-type is epsilon or v_prediction (got '\(predictionType)')")
        }
    }
}

/// The two layouts `convert --layout` writes besides HDF5's.
enum PipelineLayout: String {
    case diffusers, ldm
}

extension ConvertCommand {
    /// Runs a layout conversion when --layout names one; false otherwise.
    func convertLayout() throws -> Bool {
        guard let layout = inputOptions.hdf5Layout.flatMap(PipelineLayout.init(rawValue:)) else { return false }
        try InputSet.declare(inputs: [(input, "INPUT")], outputs: [(output, "OUTPUT")])
        let options = LDMConversionOptions(ema: layoutOptions.ema, prediction: layoutOptions.predictionType,
                                           variant: inputOptions.variant, tokenizer: layoutOptions.tokenizer)
        let result: LDMConversionResult
        switch layout {
        case .diffusers:
            let checkpoint = try openCheckpoint(input, inputOptions, randomAccess: true)
            result = try LDMConversion.toDiffusers(checkpoint, folder: output, options: options)
        case .ldm where outputFormat == .gguf:
            result = try convertUNetToComfyGGUF()
        case .ldm where PipelineFolder.isPipeline(input):
            result = try LDMConversion.toLDM(try PipelineFolder(path: input, variant: inputOptions.variant), output: output, options: options)
        case .ldm:
            // A UNet model folder (or file with its config) becomes a UNet-only original file.
            result = try LDMConversion.unetToLDM(try openCheckpoint(input, inputOptions, randomAccess: true), output: output)
        }
        if !result.skipped.isEmpty {
            note("left out \(result.skipped.count) tensors no component holds (e.g. '\(result.skipped[0])')", quiet: common.quiet)
        }
        note("wrote \(output) (\(result.family.rawValue): \(result.components.joined(separator: ", "))): \(formatCount(result.tensors)) tensors, \(formatBytes(result.bytesWritten))", quiet: common.quiet)
        return true
    }
}
