import ArgumentParser
import Workflows

struct TextEncoderBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "text-encoder",
        abstract: "Time a CLIP text encoder forward on BATCH prompts of the tokenizer length (77).",
        discussion: "Prints the median seconds per forward and the peak resident memory (JSON with --json)."
    )

    @Argument(help: "Text encoder folder (or a pipeline folder: its text_encoder/).") var model: String
    @Option(help: "Prompts per forward.") var batch = 1
    @Option(help: "Timed passes (after one warm-up pass).") var steps = 5
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard (1...1024).contains(batch), (1...1000).contains(steps) else { throw ValidationError("--batch in 1...1024, --steps in 1...1000") }
    }

    func run() throws {
        try printReport(try BenchWorkflow.textEncoder(model: model, batch: batch, steps: steps, quiet: common.quiet), json: json)
    }
}

struct VAEBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vae",
        abstract: "Time an AutoencoderKL decode (or encode) of one image at SIZE x SIZE pixels.",
        discussion: "Prints the median seconds and the peak resident memory (JSON with --json)."
    )

    @Argument(help: "VAE folder (or a pipeline folder: its vae/).") var model: String
    @Option(help: "Image side in pixels.") var size = 512
    @Flag(help: "Time encode instead of decode.") var encode = false
    @Option(help: "Timed passes (after one warm-up pass).") var steps = 3
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard (8...4096).contains(size), (1...1000).contains(steps) else { throw ValidationError("--size in 8...4096, --steps in 1...1000") }
    }

    func run() throws {
        try printReport(try BenchWorkflow.vae(model: model, size: size, encode: encode, steps: steps, quiet: common.quiet), json: json)
    }
}
