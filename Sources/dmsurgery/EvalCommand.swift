import ArgumentParser
import ConceptWorld
import Workflows

extension AttackKind: ExpressibleByArgument {}

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

        --concept style|object|both picks the concepts scored as forgotten (style 'stripes', object \
        'cross'): object and both sample the extended world's 48 prompts; forget_rate counts the \
        forget-prompt samples showing a concept the prompt asks for, forget_rates each concept alone; \
        retain_accuracy and heldout_loss use the prompts showing none of them.

        --attack paraphrase (repeatable; also adversarial) then samples the forget prompts again with \
        each concept token replaced: by its paraphrase token (an embedding near the concept's, never \
        trained on), or by an embedding optimised through the frozen model (--attack-steps Adam steps \
        within an L2 ball of --attack-radius around the token) to denoise images of the concept: the \
        --teacher's samples, else ground-truth renders. The JSON gains "attacks".

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

    @Option(help: "What is scored as forgotten: style, object or both.")
    var concept: WorldConcept = .style

    @Option(help: "Robustness attack to run after the evaluation: paraphrase or adversarial (repeat for both).")
    var attack: [AttackKind] = []

    @Option(help: "Adam steps of the adversarial attack.")
    var attackSteps = 60

    @Option(help: "L2 radius around the concept token's embedding that the adversarial embedding stays in.")
    var attackRadius: Float = 1.5

    @Option(help: "Adam learning rate of the adversarial attack.")
    var attackLr: Float = 0.05

    @Option(help: "Target images per forget prompt for the adversarial attack.")
    var attackImages = 4

    @Option(help: "Model whose samples are the adversarial attack's targets (default: ground-truth renders).")
    var teacher: String?

    @OptionGroup var input: InputOptions
    @OptionGroup var binary: BinaryOutputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard (model == nil) != (config == nil) else { throw ValidationError("give a MODEL or --config, not both") }
        guard samples >= 1, steps >= 1, gridScale >= 1 else { throw ValidationError("--samples, --steps and --grid-scale must be at least 1") }
        guard guidance.isFinite else { throw ValidationError("--guidance must be a number") }
        guard (0...AttackSettings.maximumSteps).contains(attackSteps) else {
            throw ValidationError("--attack-steps must be in 0...\(AttackSettings.maximumSteps)")
        }
        guard (1...AttackSettings.maximumImagesPerPrompt).contains(attackImages) else {
            throw ValidationError("--attack-images must be in 1...\(AttackSettings.maximumImagesPerPrompt)")
        }
        guard attackRadius.isFinite, attackRadius >= 0, attackLr.isFinite, attackLr > 0 else {
            throw ValidationError("--attack-radius must be a finite number >= 0 and --attack-lr one > 0")
        }
        guard Set(attack).count == attack.count else { throw ValidationError("give each --attack once") }
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
        settings.concept = concept
        settings.attacks = attack
        settings.attack.steps = attackSteps
        settings.attack.radius = attackRadius
        settings.attack.learningRate = attackLr
        settings.attack.imagesPerPrompt = attackImages
        settings.attack.seed = seed
        settings.teacher = teacher
        settings.json = json
        settings.open = input.open
        settings.force = binary.force
        settings.quiet = common.quiet
        try emit(EvalWorkflow.run(settings).output)
    }
}
