import Foundation
import Surgery
import TensorFormats
import TensorMath

/// `--delta-out FILE --rank R [--lora-format peft|kohya]` of erase and unlearn (formats/lora.md).
public struct DeltaOutSettings: Sendable {
    public var path: String
    public var rank: Int
    public var dialect: LoRADialect

    public static let defaultDialect = LoRADialect.peft

    public init(path: String, rank: Int, dialect: LoRADialect = Self.defaultDialect) {
        self.path = path
        self.rank = rank
        self.dialect = dialect
    }
}

/// The change a command made to a UNet, as a low-rank adapter, and `convert`'s dialect translation.
public enum LoRAWorkflow {
    /// Factors every weight of `edited` that differs from `base` (linear [out, in] and convolution
    /// [out, in, kh, kw] weights) and writes the adapter. Changed tensors of other ranks (biases, norm
    /// scales) cannot be a LoRA: they are named on stderr, not written.
    static func writeDelta(base: [String: Tensor], edited: [String: Tensor], settings: DeltaOutSettings, force: Bool, quiet: Bool) throws {
        var factors: [LoRAFactor] = []
        var worst = 0.0
        var left: [String] = []
        for name in edited.keys.sorted() {
            guard let before = base[name], let after = edited[name], before.shape == after.shape, before.data != after.data else { continue }
            guard name.hasSuffix(".weight"), after.shape.count == 2 || after.shape.count == 4 else {
                left.append(name)
                continue
            }
            do {
                let (factor, error) = try LoRAAdapter.factor(module: String(name.dropLast(".weight".count)), base: before, edited: after,
                                                             rank: settings.rank)
                factors.append(factor)
                worst = max(worst, error)
            } catch {
                throw TensorFormatError(.invalidArgument, "the SVD of the change did not converge (\(error))", file: settings.path, tensor: name)
            }
        }
        guard !factors.isEmpty else {
            throw TensorFormatError(.emptyData, "no linear or convolution weight changed: nothing to write as a LoRA", file: settings.path)
        }
        let metadata = Metadata([("dmsurgery.lora", JSONWriter.compact(.object([
            JSONMember("format", .string(settings.dialect.rawValue)), JSONMember("rank", .number(String(settings.rank))),
            JSONMember("max_relative_error", .number(String(format: "%.3e", worst))),
        ])))])
        try SafetensorsWriter.writeFloats(LoRAAdapter.tensors(factors, dialect: settings.dialect), metadata: metadata, to: settings.path, force: force)
        if let first = left.first {
            note("--delta-out: \(left.count) changed tensors are not linear or convolution weights and are not in the LoRA (first: \(first))",
                 quiet: false)
        }
        note("--delta-out: \(factors.count) weights as a rank-\(settings.rank) \(settings.dialect.rawValue) LoRA (largest relative truncation error \(String(format: "%.2e", worst))); wrote \(settings.path)",
             quiet: quiet)
    }

    /// The delta between two checkpoints on disk (the trained OUT and its input), as `writeDelta`.
    static func writeDelta(basePath: String, editedPath: String, settings: DeltaOutSettings, open: OpenOptions, force: Bool, quiet: Bool) throws {
        let base = try loadTrainable(basePath, open: open).unet.parameters
        let edited = try loadTrainable(editedPath, open: OpenOptions()).unet.parameters
        try writeDelta(base: base, edited: edited, settings: settings, force: force, quiet: quiet)
    }

    /// `convert LORA OUT --lora-format D`: every tensor of the input read as float32, mapped to `dialect`'s
    /// keys, written as float32 safetensors.
    static func convert(_ settings: ConvertSettings, to dialect: LoRADialect) throws -> ConvertResult {
        let checkpoint = try Checkpoint.open(settings.input, options: settings.open)
        var named: [String: Tensor] = [:]
        for entry in checkpoint.entries { named[entry.name] = Tensor(shape: entry.shape, data: try checkpoint.floats(of: entry)) }
        let (factors, _) = try LoRAAdapter.read(named, file: settings.input)
        let tensors = LoRAAdapter.tensors(factors, dialect: dialect)
        try SafetensorsWriter.writeFloats(tensors, metadata: nil, to: settings.output, force: settings.force)
        var result = ConvertResult()
        result.tensors = tensors.count
        result.files = [settings.output]
        return result
    }
}
