import ArgumentParser
import ConceptWorld
import Training
import Workflows

extension UnlearnSchedule: ExpressibleByArgument {}

struct UnlearnCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unlearn",
        abstract: "Bilevel fine-unlearning: remove a concept (L_CU) while staying a minimiser of the fine-tuning loss L_ft.",
        discussion: """
        --schedule penalty (the paper): min_theta max_phi L_CU(theta) + lambda(L_ft(theta) - L_ft(phi)), first order: per outer \
        iteration a lower-level copy phi takes --inner-steps AdamW steps on L_ft (rate --lr), then the student \
        theta one step along grad L_CU(theta) + lambda * grad L_ft(theta) (its own AdamW, rate --upper-lr); lambda ramps linearly from 0 \
        over --lambda-ramp iterations (0: constant). The log's gap is L_ft(theta) - L_ft(phi). \
        --schedule interleaved (the authors' code): one model, a lower step on L_ft every iteration and an \
        upper step on L_CU every --upper-every-th. Equations and costs: formats/training.md.
        --retain-prompts FILE (data-free distillation: the --teacher pipeline's own DDIM+CFG latent samples \
        for each prompt) or --retain-images DIR (PNG files encoded by its VAE) replace --data; the made data \
        is written to --retain-cache (default OUT.retain.safetensors) for a later --data. The text encoder \
        and VAE come from the --teacher pipeline folder and stay frozen (formats/training.md).
        --forget-prompt TEXT... replaces --forget: the prompts encoded by the same text encoder, used as a \
        forget file of prompts without x0 (the teacher draws the forget images).
        --delta-out FILE --rank R [--lora-format peft|kohya] also writes OUT's change from STUDENT as a LoRA \
        (formats/lora.md).
        --upper uce: the upper objective is UCE's least squares on the cross-attention projections, \
        (1/P) sum_W (1/out_W) [e sum ||W c_e - W0 c_t||^2 + p sum ||W c_p - W0 c_p||^2 + lambda ||W - W0||^2], W0 \
        STUDENT's projections, the embeddings the concept world's token rows of --forget and the retain data \
        (gradients reach attn2.to_k/to_v only). --init uce starts the phase from UCE's closed-form edit. \
        Scales: --uce-erase-scale, --uce-preserve-scale, --uce-lambda (formats/uce.md).
        --upper esd|ablation|uce chooses L_CU (--method is the same option). --upper-attack adversarial makes the \
        upper level robust: L_CU is evaluated on the forget prompts' encoder states plus an offset (each \
        token row in an L2 ball of --attack-radius) refreshed against the current student every \
        --attack-every upper steps by --attack-steps projected gradient-ascent steps on L_CU; costs and \
        equations in formats/training.md.

        Exit status: 0 success; 2 invalid input or an I/O error; 64 usage error; 130/143 interrupted by \
        SIGINT/SIGTERM after saving the resumable state.
        """
    )

    @Argument(help: "Student to unlearn (a checkpoint, folder, or -).")
    var student: String

    @Argument(help: "Output file, or - for standard output.")
    var output: String

    @Option(help: ArgumentHelp("Frozen teacher (distillation targets and ESD guidance).", valueName: "model"))
    var teacher: String

    @OptionGroup var retain: RetainOptions
    @OptionGroup var unlearn: UnlearnOptions
    @OptionGroup var forget: ForgetOptions<UnlearnSpelling>
    @OptionGroup var lower: LowerLevelOptions
    @OptionGroup var delta: DeltaOutOptions
    @OptionGroup var uce: UCEUpperOptions
    @OptionGroup var training: TrainingOptions
    @OptionGroup var input: InputOptions
    @OptionGroup var binary: BinaryOutputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        try training.validate(output: output)
        try delta.check(model: student, output: output)
        try uce.check(method: forget.concept.method, forget: forget)
    }

    func run() throws {
        try training.joinRanks()
        try TrainingWorkflows.unlearn(student: student, output: OutputSettings(path: output, force: binary.force, quiet: common.quiet),
                                      teacher: teacher, data: retain.settings, settings: try unlearn.settings, forget: try forget.settings,
                                      lower: try lower.settings, training: try training.settings, deltaOut: delta.settings,
                                      uce: try uce.settings(method: forget.concept.method), open: input.open)
    }
}

/// unlearn's own options: `UnlearnSettings`, each schedule's in its own group.
struct UnlearnOptions: SettingsOptions {
    typealias Settings = UnlearnSettings
    private static let defaults = UnlearnSettings()

    @Option(help: "penalty (the paper's first-order penalty method) or interleaved (the authors' code).")
    var schedule = Self.defaults.schedule

    @OptionGroup var penalty: PenaltyOptions

    @Option(name: .customLong("upper-lr"), help: "Learning rate of the upper-level optimizer (default --lr).")
    var upperLr: Float?

    @Option(name: .customLong("upper-warmup"), help: "Warmup of the upper-level optimizer (default --warmup).")
    var upperWarmup: Int?

    @OptionGroup var interleaved: InterleavedOptions
    @OptionGroup var attack: UpperAttackOptions

    func validate() throws {
        try requireFinite(["--upper-lr": upperLr])
        if let upperLr, upperLr <= 0 { throw ValidationError("--upper-lr must be positive") }
        if let upperWarmup, upperWarmup < 0 { throw ValidationError("--upper-warmup must not be negative") }
    }
}

/// `--schedule penalty`'s options: `PenaltySettings`.
struct PenaltyOptions: SettingsOptions {
    typealias Settings = PenaltySettings
    private static let defaults = PenaltySettings()

    @Option(name: .customLong("inner-steps"), help: "Penalty: lower-level steps of the copy per outer iteration (K).")
    var innerSteps = Self.defaults.innerSteps

    @Option(help: "Penalty: weight lambda of the lower-level objective in the student's step.")
    var lambda = Self.defaults.lambda

    @Option(name: .customLong("lambda-ramp"), help: "Penalty: iterations over which lambda grows linearly from 0 (0: constant).")
    var lambdaRamp = Self.defaults.lambdaRamp

    func validate() throws {
        try requireFinite(["--lambda": lambda])
        guard innerSteps >= 1, lambdaRamp >= 0, lambda >= 0 else {
            throw ValidationError("--inner-steps and --upper-every must be at least 1; --lambda and --lambda-ramp not negative")
        }
    }
}

/// `--schedule interleaved`'s options: `InterleavedSettings`.
struct InterleavedOptions: SettingsOptions {
    typealias Settings = InterleavedSettings
    private static let defaults = InterleavedSettings()

    @Option(name: .customLong("upper-every"), help: "Interleaved: an upper step every k-th iteration.")
    var upperEvery = Self.defaults.upperEvery

    func validate() throws {
        guard upperEvery >= 1 else {
            throw ValidationError("--inner-steps and --upper-every must be at least 1; --lambda and --lambda-ramp not negative")
        }
    }
}

extension UpperAttackKind: ExpressibleByArgument {}

/// The robust upper level's options: `UpperAttackSettings` (part of the run only with --upper-attack).
struct UpperAttackOptions: SettingsOptions {
    typealias Settings = UpperAttackSettings
    private static let defaults = UpperAttackSettings()

    @Option(name: .customLong("upper-attack"), help: ArgumentHelp("Robust upper level: evaluate L_CU on adversarial offsets of the forget prompts' encoder states.", valueName: "attack"))
    var kind: UpperAttackKind?

    @Option(name: .customLong("attack-every"), help: "Refresh the adversarial offsets every N upper steps.")
    var every = Self.defaults.every

    @Option(name: .customLong("attack-steps"), help: "Projected gradient steps per refresh.")
    var steps = Self.defaults.steps

    @Option(name: .customLong("attack-radius"), help: "L2 radius of each token row's offset (the ball of eval --attack adversarial).")
    var radius = Self.defaults.radius

    func validate() throws {
        guard (1...1_000_000).contains(every), (1...AttackSettings.maximumSteps).contains(steps) else {
            throw ValidationError("--attack-every must be in 1...1000000 and --attack-steps in 1...\(AttackSettings.maximumSteps)")
        }
        guard radius.isFinite, radius >= 0 else { throw ValidationError("--attack-radius must be a finite number >= 0") }
        if kind == nil, every != Self.defaults.every || steps != Self.defaults.steps || radius != Self.defaults.radius {
            throw ValidationError("--attack-every, --attack-steps and --attack-radius go with --upper-attack adversarial")
        }
    }
}
