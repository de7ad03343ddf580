import ArgumentParser
import TensorFormats
import Workflows

/// What a benchmark runs on, shared by its subcommands.
struct BenchSubject: ParsableArguments {
    @Option(help: "Model: a diffusers folder, a checkpoint with dmsurgery.config metadata, or -.")
    var model: String?

    @Option(help: "A diffusers config.json to build with random weights instead of --model.")
    var config: String?

    @Option(help: "Image (or latent) height and width; default the config's sample_size.")
    var size: Int?

    @Flag(help: "Print one JSON object.")
    var json = false

    @Flag(help: "Also say on stderr which OpenBLAS core and kernel set run, and why.")
    var verbose = false

    @OptionGroup var input: InputOptions

    func validate() throws {
        guard (model == nil) != (config == nil) else { throw ValidationError("give exactly one of --model and --config") }
    }

    func settings(quiet: Bool) -> BenchSubjectSettings {
        var settings = BenchSubjectSettings(model: model, config: config)
        settings.size = size
        settings.open = input.open
        settings.quiet = quiet
        return settings
    }
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time the graph engine.",
        subcommands: [TrainStepBench.self, ForwardBench.self, TextEncoderBench.self, VAEBench.self]
    )
}

/// Prints a benchmark's report: one JSON object, or the table.
func printReport(_ report: BenchReport, json: Bool) throws {
    try emit(json ? JSONWriter.pretty(.object(report.json)) : table(report.rows))
}
