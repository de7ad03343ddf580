import ArgumentParser
import Diffusion
import Foundation
import TensorFormats
import TensorMath
import UNet

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

    @OptionGroup var input: InputOptions

    func validate() throws {
        guard (model == nil) != (config == nil) else { throw ValidationError("give exactly one of --model and --config") }
    }
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time the graph engine.",
        subcommands: [TrainStepBench.self, ForwardBench.self, TextEncoderBench.self, VAEBench.self]
    )
}

/// The process's peak resident set (getrusage; Linux reports kilobytes).
func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
}
