import ArgumentParser
import CLIP
import Foundation
import TensorFormats
import TensorMath
import Workflows

struct EncodePromptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode-prompt",
        abstract: "Encode prompts with a pipeline's tokenizer and text encoder into a training-data file.",
        discussion: """
        PIPELINE is a diffusers pipeline folder (or any folder with tokenizer/ and text_encoder/, and \
        SDXL's tokenizer_2/ and text_encoder_2/). OUT (safetensors, - for standard output) gets `cond` \
        [N,77,D] and `uncond` [77,D] (the empty prompt) as diffusers' encode_prompt makes them, the \
        prompts as `dmsurgery.prompts` metadata, and for SDXL `cond_pooled` [N,P] and `uncond_pooled` [P]. \
        It is a forget file as it stands, and `cond`/`uncond` of a data file (formats/encode-prompt.md). \
        --prompts reads one prompt per line (UTF-8; empty lines skipped).

        Exit status: 0 success, 2 invalid or unreadable input, 64 usage error.
        """
    )

    @Argument(help: "Pipeline folder.") var pipeline: String
    @Argument(help: "Output safetensors file.") var output: String
    @Option(name: .customLong("prompt"), help: "Prompt text (repeat the option for more prompts).") var prompts: [String] = []
    @Option(name: .customLong("prompts"), help: "File with one prompt per line.") var promptFile: String?
    @OptionGroup var binary: BinaryOutputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard !prompts.isEmpty || promptFile != nil else { throw ValidationError("give --prompt TEXT... or --prompts FILE") }
    }

    func run() throws {
        try InputSet.declare(inputs: [(pipeline, "PIPELINE"), (promptFile, "--prompts")], outputs: [(output, "OUT")])
        var all = prompts
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
        try SafetensorsWriter.writeFloats(tensors, metadata: Metadata([("dmsurgery.prompts", promptJSON)]), to: output, force: binary.force)
        note("wrote cond \(formatShape(cond.shape)) for \(all.count) prompts to \(output)", quiet: common.quiet)
    }
}
