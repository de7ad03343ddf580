import CLIP
import Foundation
import TensorFormats
import TensorMath

/// What `encode-prompt` is told, as plain values.
public struct EncodePromptSettings: Sendable {
    /// A diffusers pipeline folder (tokenizer/, text_encoder/ and SDXL's second pair).
    public var pipeline: String
    public var output: String
    /// Prompt texts, then the lines of `promptFile` (empty lines skipped).
    public var prompts: [String] = []
    public var promptFile: String?
    public var force = false
    public var quiet = false

    public init(pipeline: String, output: String) {
        self.pipeline = pipeline
        self.output = output
    }
}

/// `encode-prompt`'s body: prompts to `cond`/`uncond` (and SDXL's pooled) as diffusers' encode_prompt makes them.
public enum EncodePromptWorkflow {
    /// Encodes and writes OUT; returns how many prompts were encoded.
    @discardableResult
    public static func run(_ s: EncodePromptSettings) throws -> Int {
        let pipeline = s.pipeline, output = s.output, promptFile = s.promptFile
        try InputSet.declare(inputs: [(pipeline, "PIPELINE"), (promptFile, "--prompts")], outputs: [(output, "OUT")])
        var all = s.prompts
        if let promptFile { all += try readPromptFile(promptFile) }
        guard !all.isEmpty else {
            throw TensorFormatError(.invalidArgument, "no prompts (only empty lines)", file: promptFile)
        }
        let encoder = try PromptEncoder(pipeline: pipeline)
        let (cond, pooled) = try encoder.encode(all)
        let (uncond, uncondPooled) = try encoder.emptyPrompt()
        var tensors: [(name: String, shape: [Int], values: [Float])] = [("cond", cond.shape, cond.data), ("uncond", uncond.shape, uncond.data)]
        if let pooled, let uncondPooled {
            tensors += [("cond_pooled", pooled.shape, pooled.data), ("uncond_pooled", uncondPooled.shape, uncondPooled.data)]
        }
        let promptJSON = JSONWriter.compact(.array(all.map { .string($0) }))
        try SafetensorsWriter.writeFloats(tensors, metadata: Metadata([("dmsurgery.prompts", promptJSON)]), to: output, force: s.force)
        note("wrote cond \(formatShape(cond.shape)) for \(all.count) prompts to \(output)", quiet: s.quiet)
        return all.count
    }
}
