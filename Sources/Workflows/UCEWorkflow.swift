import CLIP
import Foundation
import TensorFormats
import TensorMath
import Training
import UNet

/// `erase --method uce`: the closed-form edit of the cross-attention projections (formats/uce.md).
public struct UCESettings: Sendable {
    /// `--forget-prompt`: the erased concepts' prompts (pipelines).
    public var forgetPrompts: [String] = []
    /// `--target-prompt`: none (the empty prompt), one for every erased prompt, or one each.
    public var targetPrompts: [String] = []
    /// `--preserve-prompts FILE`: prompts mapped to themselves, one per line.
    public var preservePrompts: String?
    /// `--forget FILE` (concept world): the forget file's cond, uncond and optional anchor.
    public var forget: String?
    /// `--data FILE` (concept world): the retain data whose token rows are preserved.
    public var data: String?
    /// `--teacher`: the pipeline folder whose text encoder encodes the prompts when MODEL is not one.
    public var textEncoder: String?
    public var eraseScale = ClosedFormEdit.Default.eraseScale
    public var preserveScale = ClosedFormEdit.Default.preserveScale
    public var lambda = ClosedFormEdit.Default.lambda

    public init() {}
}

public enum UCEWorkflow {
    /// Loads MODEL, gathers the token embeddings, edits every `attn2.to_k`/`attn2.to_v` and writes OUT
    /// (every other tensor as it was read, float32).
    public static func erase(model: String, output: OutputSettings, settings: UCESettings, deltaOut: DeltaOutSettings? = nil,
                             open: OpenOptions) throws {
        try InputSet.declare(inputs: [(model, "MODEL"), (settings.textEncoder, "--teacher"), (settings.preservePrompts, "--preserve-prompts"),
                                      (settings.forget, "--forget"), (settings.data, "--data")],
                             outputs: [(output.path, "OUT"), (deltaOut?.path, "--delta-out")])
        try checkOutputTarget(output)
        let start = Date()
        var (unet, origin) = try loadTrainable(model, open: open)
        guard let d = unet.contextDim else {
            throw TensorFormatError(.invalidConfig, "UCE edits cross-attention: the model has no cross_attention_dim", file: model)
        }
        let (edit, record) = try settings.forget == nil
            ? promptEdit(settings, pipeline: settings.textEncoder ?? model, width: d)
            : worldEdit(settings, model: unet, open: open)
        let k: [Double]
        do { k = try edit.transform() } catch {
            throw TensorFormatError(.uceNotPositiveDefinite, "the UCE system λI + e·ΣccT + p·ΣccT is not positive definite (\(error)); raise --lambda",
                                    file: settings.forget ?? settings.preservePrompts ?? model)
        }
        let original = unet.parameters.filter { ClosedFormEdit.isProjection($0.key) }
        let edited: [String]
        do { edited = try ClosedFormEdit.edit(&unet, transform: k, width: d) } catch let error as UNetError {
            throw located(error, file: model)
        }
        guard !edited.isEmpty else {
            throw TensorFormatError(.invalidConfig, "no cross-attention projection (attn2.to_k/to_v) to edit", file: model)
        }
        var metadata = origin.metadata
        metadata[trainingMetadataKey] = JSONWriter.compact(.object([
            JSONMember("command", .string("erase")),
            JSONMember("options", .object(record + [
                JSONMember("method", .string("uce")),
                JSONMember("erase_scale", .number("\(settings.eraseScale)")),
                JSONMember("preserve_scale", .number("\(settings.preserveScale)")),
                JSONMember("lambda", .number("\(settings.lambda)")),
            ])),
            JSONMember("source_sha256", .string(origin.sha256)),
            JSONMember("edited", .number(String(edited.count))),
        ]))
        try unet.write(to: output.path, configJSON: origin.configJSON, metadata: metadata, force: output.force)
        if let deltaOut {
            try LoRAWorkflow.writeDelta(base: original, edited: unet.parameters.filter { ClosedFormEdit.isProjection($0.key) },
                                        settings: deltaOut, force: output.force, quiet: output.quiet)
        }
        let seconds = String(format: "%.1f", Date().timeIntervalSince(start))
        note("erase --method uce: \(edited.count) projections edited from \(edit.erase.count) erased and \(edit.preserve.count) preserved embeddings in \(seconds) s; wrote \(output.path)",
             quiet: output.quiet)
    }

    /// The pipeline rule (the authors'): each prompt's last token before the end token, from the text
    /// encoder's last hidden state; the empty prompt's is its start token.
    static func promptEdit(_ settings: UCESettings, pipeline: String, width d: Int) throws -> (ClosedFormEdit, [JSONMember]) {
        guard PipelineParts(pipeline).part("text_encoder") != nil || PipelineParts(pipeline).part("text_encoder_2") != nil else {
            throw TensorFormatError(.invalidConfig, "--forget-prompt needs a pipeline folder with a text encoder (MODEL or --teacher)", file: pipeline)
        }
        let encoder = try PromptEncoder(pipeline: pipeline)
        guard encoder.width == d else {
            throw TensorFormatError(.invalidConfig, "the text encoder's width \(encoder.width) differs from the UNet's cross_attention_dim \(d)",
                                    file: PipelineParts(pipeline).part("text_encoder") ?? pipeline)
        }
        let forget = settings.forgetPrompts
        let targets = settings.targetPrompts.isEmpty ? [""] : settings.targetPrompts
        let preserve = try settings.preservePrompts.map(readPromptFile) ?? []
        let pairedTargets = targets.count == 1 ? Array(repeating: targets[0], count: forget.count) : targets
        var unique: [String] = []
        for prompt in forget + pairedTargets + preserve where !unique.contains(prompt) { unique.append(prompt) }
        let (hidden, _) = try encoder.encode(unique)
        let tokenizer = encoder.tokenizers[0], s = encoder.length
        var rows: [String: [Float]] = [:]
        for (n, prompt) in unique.enumerated() {
            let index = try tokenizer.tokenize(prompt, limit: tokenizer.maxLength - 2).count
            rows[prompt] = Array(hidden.data[(n * s + index) * d..<(n * s + index + 1) * d])
        }
        var edit = ClosedFormEdit(width: d, erase: zip(forget, pairedTargets).map { .init(concept: rows[$0]!, target: rows[$1]!) },
                                  preserve: preserve.map { rows[$0]! })
        edit.eraseScale = settings.eraseScale
        edit.preserveScale = settings.preserveScale
        edit.lambda = settings.lambda
        let record = [JSONMember("forget_prompts", .array(forget.map { .string($0) })),
                      JSONMember("target_prompts", .array(pairedTargets.map { .string($0) })),
                      JSONMember("preserve_prompts", .string(PromptData.digest(preserve)))]
        return (edit, record)
    }

    /// The concept world's files (`--forget`, `--data`) read and turned into the edit by `worldEdit(forget:data:)`.
    static func worldEdit(_ settings: UCESettings, model: UNet2D, open: OpenOptions) throws -> (ClosedFormEdit, [JSONMember]) {
        let path = settings.forget!
        let (forget, forgetSHA) = try loadTrainingData(path, role: .forget, model: model, open: open)
        var data: TrainingData?
        var record = [JSONMember("forget", .string(forgetSHA))]
        if let dataPath = settings.data {
            let (retained, sha) = try loadTrainingData(dataPath, role: .data, model: model, open: open)
            data = retained
            record.append(JSONMember("data", .string(sha)))
        }
        var edit = try worldEdit(forget: forget, data: data, file: path, dataFile: settings.data)
        edit.eraseScale = settings.eraseScale
        edit.preserveScale = settings.preserveScale
        edit.lambda = settings.lambda
        return (edit, record)
    }

    /// The concept world's rule: a forget prompt's token rows that occur in no `data` prompt (without
    /// `data`, its last row), each mapped to the anchor prompt's row at the same position (without an
    /// anchor, the empty prompt's); every distinct row of the `data` prompts is preserved. Default scales.
    static func worldEdit(forget: TrainingData, data: TrainingData?, file path: String, dataFile: String? = nil) throws -> ClosedFormEdit {
        guard let cond = forget.cond, let uncond = forget.uncond else {
            throw TensorFormatError(.missingTensor, "UCE needs the forget prompts' cond [M,S,D] and the empty prompt uncond [S,D]", file: path,
                                    tensor: forget.cond == nil ? "cond" : "uncond")
        }
        let s = cond.shape[1], d = cond.shape[2]
        func row(_ t: Tensor, _ item: Int, _ position: Int) -> [Float] {
            Array(t.data[(item * s + position) * d..<(item * s + position + 1) * d])
        }
        var preserve: [[Float]] = []
        if let data {
            guard let retained = data.cond, retained.shape[1] == s else {
                throw TensorFormatError(.missingTensor, "UCE preserves the retain prompts' cond [N,\(s),D]", file: dataFile ?? path, tensor: "cond")
            }
            for item in 0..<retained.shape[0] {
                for position in 0..<s {
                    let r = row(retained, item, position)
                    if !preserve.contains(r) { preserve.append(r) }
                }
            }
        }
        var pairs: [ClosedFormEdit.Pair] = []
        for item in 0..<cond.shape[0] {
            let positions = data == nil ? [s - 1] : (0..<s).filter { !preserve.contains(row(cond, item, $0)) }
            for position in positions {
                let target = forget.anchor.map { row($0, item, position) } ?? Array(uncond.data[position * d..<(position + 1) * d])
                let pair = ClosedFormEdit.Pair(concept: row(cond, item, position), target: target)
                if !pairs.contains(pair) { pairs.append(pair) }
            }
        }
        guard !pairs.isEmpty else {
            throw TensorFormatError(.emptyData, "every token of the forget prompts also occurs in a retain prompt: nothing to erase", file: path, tensor: "cond")
        }
        return ClosedFormEdit(width: d, erase: pairs, preserve: preserve)
    }
}

/// What `unlearn` does with UCE (the settings value lives in Training's RunSettings, beside the others
/// the run description holds).
extension UCEPhaseSettings {
    /// The edit of `forget` (the forget file's data) against `data` (the retain data) at these scales.
    func edit(forget: TrainingData, data: TrainingData, file: String) throws -> ClosedFormEdit {
        var edit = try UCEWorkflow.worldEdit(forget: forget, data: data, file: file)
        edit.eraseScale = eraseScale
        edit.preserveScale = preserveScale
        edit.lambda = lambda
        return edit
    }

    /// Applies `--init uce` to `student` and sets `upper`'s UCE objective when it is `--method uce`;
    /// W_0 of the objective is STUDENT's projections before the initial edit.
    func prepare(_ student: inout UNet2D, upper: inout ConceptObjective, forget: TrainingData, data: TrainingData, file: String,
                 studentPath: String) throws {
        let edit = try edit(forget: forget, data: data, file: file)
        guard let d = student.contextDim else {
            throw TensorFormatError(.invalidConfig, "UCE edits cross-attention: the student has no cross_attention_dim", file: studentPath)
        }
        let base = student.parameters.filter { ClosedFormEdit.isProjection($0.key) }
        guard !base.isEmpty else { throw TensorFormatError(.invalidConfig, "no cross-attention projection (attn2.to_k/to_v) to edit", file: studentPath) }
        if upper.settings.method == .uce { upper.closedForm = ClosedFormObjective(edit: edit, base: base) }
        if initEdit == .uce {
            let k: [Double]
            do { k = try edit.transform() } catch {
                throw TensorFormatError(.uceNotPositiveDefinite, "the UCE system is not positive definite (\(error)); raise --uce-lambda", file: file)
            }
            do { try ClosedFormEdit.edit(&student, transform: k, width: d) } catch let error as UNetError { throw located(error, file: studentPath) }
        }
    }
}

extension ErrorCode {
    /// UCE's normal-equation matrix λI + e·Σ c cᵀ + p·Σ c cᵀ that Cholesky refuses (formats/uce.md).
    public static let uceNotPositiveDefinite = ErrorCode(rawValue: "uce-not-positive-definite")
}
