import ArgumentParser
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
        var settings = EncodePromptSettings(pipeline: pipeline, output: output)
        settings.prompts = prompts
        settings.promptFile = promptFile
        settings.force = binary.force
        settings.quiet = common.quiet
        try EncodePromptWorkflow.run(settings)
    }
}
