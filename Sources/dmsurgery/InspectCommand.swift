import ArgumentParser
import TensorFormats
import Workflows

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a checkpoint from its headers: format, metadata, tensors, module tree, architecture.",
        discussion: """
        Reads headers only, so it is instant on a multi-GB file (a pipe is read to its end to validate it). \
        --json prints one object with the keys name, format, files, details, metadata, architecture, \
        parameters, bytes, dtypes, tensors, modules and unet (formats/cli.md). For a diffusers UNet whose \
        config dmsurgery reads, it adds parameters and multiply-accumulates per block at the config's \
        sample size and, for a pruned checkpoint, every layer's kept inner width against the base.

        Exit status: 0 success, 2 invalid or unreadable input, 64 usage error.
        """
    )

    @Argument(help: "Checkpoint: a .safetensors file, a *.index.json, a model folder, or - for standard input.")
    var checkpoint: String

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Option(help: "Depth of the module tree (dotted name components).")
    var depth = 2

    @Flag(help: "Leave out the per-tensor table in text output.")
    var noTensors = false

    @OptionGroup var input: InputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard depth >= 1 else { throw ValidationError("--depth must be at least 1") }
    }

    func run() throws {
        var settings = InspectSettings(checkpoint: checkpoint)
        settings.open = input.open
        settings.moduleDepth = depth
        settings.json = json
        settings.tensorTable = !noTensors
        try emit(InspectWorkflow.run(settings).output)
    }
}
