import ArgumentParser
import Workflows

struct TrainStepBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-step",
        abstract: "Time forward, backward and an AdamW update of a UNet on random data.",
        discussion: """
        Inputs are random at the config's sample_size (or --size): images noised at random timesteps of a \
        DDPM linear schedule, an epsilon-prediction MSE loss, and, for conditional models, random encoder \
        hidden states of 77 tokens. With --config instead of --model the weights are freshly initialised. \
        The first step is a warm-up and is not counted. --json prints one object with seconds_per_step, \
        forward, backward, update, parameters, batch, size, threads, steps, loss, nominal_gflop (3x the \
        forward's multiply-adds x 2, Winograd savings not subtracted) and gflops (nominal work per second).

        With --teacher, each step is `unlearn`'s lower level against that frozen teacher instead: the \
        teacher's forward, the student's L_ft = L_diff + 2 L_outKD + 0.1 L_featKD with its backward, and \
        AdamW; --json then prints seconds_per_step, teacher, student (forward + backward), update, \
        parameters, teacher_parameters, batch, size, steps, loss and peak_rss_bytes.

        Exit status: 0 success, 2 invalid or unreadable input, 64 usage error.
        """
    )

    @OptionGroup var subject: BenchSubject

    @Option(help: "Batch size.")
    var batch = 8

    @Option(help: "Timed steps (after one warm-up step).")
    var steps = 3

    @Option(help: "A frozen dense teacher (diffusers folder or checkpoint): time the distillation step of a pruned --model.")
    var teacher: String?

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard batch >= 1, steps >= 1 else { throw ValidationError("--batch and --steps must be at least 1") }
    }

    func run() throws {
        let setup = EngineSetup()
        setup.describe(verbose: subject.verbose, quiet: common.quiet)
        try printReport(try BenchWorkflow.trainStep(subject.settings(quiet: common.quiet), batch: batch, steps: steps, teacher: teacher, setup: setup),
                        json: subject.json)
    }
}
