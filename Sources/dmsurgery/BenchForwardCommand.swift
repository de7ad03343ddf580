import ArgumentParser
import Workflows

struct ForwardBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Time UNet inference (no tape) on random inputs and report the peak memory.",
        discussion: """
        Random inputs at the config's sample_size (or --size) and, for conditional models, 77 random \
        context tokens. The first pass is a warm-up and is not counted. --json prints one object with \
        seconds_per_forward, parameters, batch, size and peak_rss_bytes (the process's maximum resident \
        set, weights included).

        Exit status: 0 success, 2 invalid or unreadable input, 64 usage error.
        """
    )

    @OptionGroup var subject: BenchSubject

    @Option(help: "Batch size.")
    var batch = 1

    @Option(help: "Timed passes (after one warm-up pass).")
    var steps = 2

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard batch >= 1, steps >= 1 else { throw ValidationError("--batch and --steps must be at least 1") }
    }

    func run() throws {
        let setup = EngineSetup()
        setup.describe(verbose: subject.verbose, quiet: common.quiet)
        try printReport(try BenchWorkflow.forward(subject.settings(quiet: common.quiet), batch: batch, steps: steps, setup: setup), json: subject.json)
    }
}
