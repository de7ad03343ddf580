import Foundation
import ONNX
import TensorFormats

/// Every format `convert` writes: the suffixes that name it, the line its help shows and the `--quant`
/// types it takes. The suffix rule, the option checks and the CLI's help all read this one table, so a new
/// writer is a case here plus its write function in `ConvertWorkflow`.
public enum OutputFormat: String, CaseIterable, Sendable {
    case safetensors
    case hdf5
    case gguf
    case torch
    case onnx

    /// Lower-case suffixes that name the format (a trailing `.zst` is looked through first).
    public var suffixes: [String] {
        switch self {
        case .safetensors: return [".safetensors"]
        case .hdf5: return [".h5", ".hdf5"]
        case .gguf: return [".gguf"]
        case .torch: return [".pt", ".pth", ".ckpt", ".bin"]
        case .onnx: return [".onnx"]
        }
    }

    /// One line of `convert --help` (formats/cli.md).
    public var summary: String {
        switch self {
        case .safetensors: return "safetensors (the default; also sharded, zstd-compressed, a folder or a stream)"
        case .hdf5: return "HDF5 (--hdf5-layout dmsurgery|keras3, --compress gzip|zstd for its datasets)"
        case .gguf: return "GGUF (--quant \(quantNames.joined(separator: "|")); small and 1-D tensors stay float as ComfyUI-GGUF keeps them)"
        case .torch: return "a torch.save zip that torch.load(weights_only=True) and A1111-era tools read (one file; no metadata, so no config)"
        case .onnx: return "an ONNX graph (opset 21) of a UNet, text encoder or VAE half (--part), or with --to onnx a pipeline folder as OnnxStableDiffusionPipeline loads it (--unet ships a student); --static, --quant \(quantNames.joined(separator: "|")) (MatMulNBits, DequantizeLinear), --block-size (formats/onnx.md)"
        }
    }

    /// What `--quant` takes for this format; empty when it takes none.
    public var quantNames: [String] { quantChoices.map(\.name) }

    var quantChoices: [WeightQuant] {
        switch self {
        case .gguf: return GGMLType.writable.map(WeightQuant.ggml)
        case .onnx: return WeightQuantization.Precision.allCases.map(WeightQuant.onnx)
        case .safetensors, .hdf5, .torch: return []
        }
    }

    /// Suffixes of formats dmsurgery reads or knows but does not write: an OUT with one of them is refused
    /// rather than given safetensors bytes that every other tool would then misread.
    static let foreignSuffixes: [(suffix: String, format: String)] = [
        (".pkl", "a Python pickle"), (".mlpackage", "a Core ML package"), (".mlmodel", "a Core ML model"),
        (".msgpack", "Flax msgpack"), (".npz", "a NumPy archive"), (".npy", "a NumPy array"), (".keras", "a Keras 3 archive"),
        (".tflite", "TensorFlow Lite"), (".pb", "a TensorFlow graph"), (".json", "JSON text"), (".zip", "a zip archive"),
        (".tar", "a tar archive"), (".gz", "gzip"), (".png", "an image"), (".txt", "text"),
    ]

    /// The format an output path asks for: `--to` when given (and then the suffix must not name another
    /// format), else the suffix, else safetensors (a stream, a folder, or a name without a known suffix).
    /// A suffix naming a format this tool does not write is refused with `unsupported-format`.
    public static func resolve(output: String, to explicit: OutputFormat?) throws -> OutputFormat {
        let named = try named(by: output)
        if let explicit {
            if let named, named != explicit {
                throw TensorFormatError(.invalidArgument, "OUT's suffix names \(named.rawValue) but --to says \(explicit.rawValue)", file: output)
            }
            return explicit
        }
        return named ?? .safetensors
    }

    /// The format a path's suffix names, nil when it names none (a stream, a folder, no known suffix).
    private static func named(by output: String) throws -> OutputFormat? {
        guard output != "-", !output.hasSuffix("/") else { return nil }
        var lower = output.lowercased()
        if lower.hasSuffix(".zst") { lower.removeLast(4) }
        if let format = allCases.first(where: { format in format.suffixes.contains { lower.hasSuffix($0) } }) { return format }
        if let foreign = foreignSuffixes.first(where: { lower.hasSuffix($0.suffix) }) {
            let written = allCases.flatMap(\.suffixes).joined(separator: ", ")
            throw TensorFormatError(.unsupported, "the suffix \(foreign.suffix) names \(foreign.format), which convert does not write (it writes \(written), a folder or -)",
                                    file: output)
        }
        return nil
    }

    /// `--quant`'s value parsed for this format; the error lists what the format takes.
    public func quant(named text: String) throws -> WeightQuant {
        guard !quantChoices.isEmpty else {
            let takers = OutputFormat.allCases.filter { !$0.quantChoices.isEmpty }.map(\.rawValue).joined(separator: ", ")
            throw TensorFormatError(.invalidArgument, "--quant applies to \(takers) output only (this output is \(rawValue))")
        }
        guard let choice = quantChoices.first(where: { $0.name == text.lowercased() }) else {
            throw TensorFormatError(.invalidArgument, "--quant for \(rawValue) output is one of \(quantNames.joined(separator: ", ")) (got '\(text)')")
        }
        return choice
    }
}

/// A weight type `--quant` selects, per output format.
public enum WeightQuant: Sendable, Equatable {
    /// A GGML type for the bulk of a GGUF file's weights.
    case ggml(GGMLType)
    /// Weight-only integer weights of an ONNX graph's linear layers and convolutions.
    case onnx(WeightQuantization.Precision)

    public var name: String {
        switch self {
        case .ggml(let type): return type.caseName
        case .onnx(let precision): return precision.rawValue
        }
    }

    var ggmlType: GGMLType? {
        if case .ggml(let type) = self { return type }
        return nil
    }

    /// The ONNX precision, for ONNX output.
    public var onnxPrecision: WeightQuantization.Precision? {
        if case .onnx(let precision) = self { return precision }
        return nil
    }
}

/// The three layouts `--layout` used to name at once, each under its own option now.
public enum PipelineLayout: String, CaseIterable, Sendable {
    /// An original single file (SD 1.x/2.x/XL) -> a diffusers pipeline folder.
    case diffusers
    /// A diffusers pipeline (or UNet) folder -> an original single file (or ComfyUI-GGUF's UNet).
    case ldm
}
