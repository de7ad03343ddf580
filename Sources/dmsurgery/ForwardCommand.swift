import ArgumentParser
import Workflows

struct ForwardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Run a UNet forward (and optionally backward) pass on inputs from a safetensors file.",
        discussion: """
        INPUTS holds `sample` [B,C,H,W], `timestep` [B] or [] (any float or integer dtype) and, for \
        UNet2DConditionModel, `encoder_hidden_states` [B,S,D]; for SDXL (addition_embed_type text_time), \
        `text_embeds` [B,P] and `time_ids` [B,6]. OUTPUT gets `sample` (float32). With \
        --backward, INPUTS also holds `cotangent` (the output's shape) and OUTPUT also gets the \
        vector-Jacobian product of sum(output * cotangent): `grad.sample`, `grad.encoder_hidden_states`, \
        `grad.text_embeds` and `grad.time_ids` (SDXL) and `grad.<parameter>` for every parameter. --blocks adds every block output as `block.down.<i>`, \
        `block.mid`, `block.up.<i>`.

        Exit status: 0 success, 2 invalid or unreadable input, 64 usage error.
        """
    )

    @Option(help: "Model: a diffusers folder, a checkpoint with dmsurgery.config metadata, or -.")
    var model: String

    @Option(help: "Safetensors file with the inputs.")
    var inputs: String

    @Option(help: "Output safetensors file (- for standard output).")
    var output: String

    @Flag(help: "Also compute gradients of sum(output * cotangent).")
    var backward = false

    @Flag(help: "Also write every block output (feature-distillation taps).")
    var blocks = false

    @OptionGroup var input: InputOptions
    @OptionGroup var binary: BinaryOutputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard model != "-" || inputs != "-" else { throw ValidationError("--model and --inputs cannot both be standard input") }
    }

    func run() throws {
        var settings = ForwardSettings(model: model, inputs: inputs, output: output)
        settings.backward = backward
        settings.blocks = blocks
        settings.open = input.open
        settings.force = binary.force
        settings.quiet = common.quiet
        try ForwardWorkflow.run(settings)
    }
}
