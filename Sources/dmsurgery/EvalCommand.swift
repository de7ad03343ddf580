import ArgumentParser
import Workflows

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score a model on the concept world: forget rate, retain accuracy, held-out loss.",
        discussion: """
        Samples every prompt of the world (`dmsurgery world --prompts`) --samples times with DDIM \
        (eta 0, the model's scheduler_config.json or --scheduler) and reads each sample with the \
        hand-written colour, shape and style detectors. forget_rate: share of forget-prompt samples \
        in the forget style. retain_accuracy: share of retain-prompt samples with the prompted shape, \
        colour and style. heldout_loss: denoising MSE on held-out retain renders at fixed noise and \
        timesteps (independent of --seed). detector_accuracy: the detectors on fresh ground-truth \
        renders; below 95% the scores are not trusted (a warning, and detectors_trusted false). Works \
        for pruned checkpoints; a model whose channels or context width do not fit the world is \
        refused. See formats/concept-world.md.

        Exit status: 0 success, 2 invalid or unfitting model, 64 usage error.
        """
    )

    @Argument(help: "Model: a diffusers folder, a checkpoint with dmsurgery.config metadata, or -.")
    var model: String?

    @Option(help: "Evaluate random weights built from this config.json instead of a model (a floor).")
    var config: String?

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    @Option(help: "Seed of the sampling noise.")
    var seed: UInt64 = 0

    @Option(help: "Samples per prompt.")
    var samples = 8

    @Option(help: "DDIM steps.")
    var steps = 20

    @Option(help: "Classifier-free guidance scale with the empty prompt (1: conditional model alone).")
    var guidance: Float = 1

    @Option(help: "Write the samples as a PNG grid, one row per prompt.")
    var grid: String?

    @Option(help: "Pixels per image pixel in the grid.")
    var gridScale = 4

    @Option(help: "scheduler_config.json to use instead of the model's.")
    var scheduler: String?

    @OptionGroup var input: InputOptions
    @OptionGroup var binary: BinaryOutputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard (model == nil) != (config == nil) else { throw ValidationError("give a MODEL or --config, not both") }
        guard samples >= 1, steps >= 1, gridScale >= 1 else { throw ValidationError("--samples, --steps and --grid-scale must be at least 1") }
        guard guidance.isFinite else { throw ValidationError("--guidance must be a number") }
    }

    func run() throws {
        var settings = EvalSettings(model: model, config: config)
        settings.seed = seed
        settings.samples = samples
        settings.steps = steps
        settings.guidance = guidance
        settings.grid = grid
        settings.gridScale = gridScale
        settings.scheduler = scheduler
        settings.json = json
        settings.open = input.open
        settings.force = binary.force
        settings.quiet = common.quiet
        try emit(EvalWorkflow.run(settings).output)
    }
}
