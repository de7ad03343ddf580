import ArgumentParser
import Training
import Workflows

/// Options every training subcommand (finetune, erase, unlearn) shares: `TrainingSettings`.
struct TrainingOptions: SettingsOptions {
    typealias Settings = TrainingSettings
    /// The defaults the options start from (and the help shows): the settings' own.
    private static let defaults = TrainingSettings()

    @Option(help: "Iterations to run (unlearn: outer iterations).")
    var steps = Self.defaults.steps

    @OptionGroup var optimizer: OptimizerOptions

    @Option(help: "scheduler_config.json to train with instead of the model's.")
    var scheduler: String?

    @Option(help: ArgumentHelp("Append one JSON line per iteration (step, losses, lr, seconds) to this file.", valueName: "file"))
    var log: String?

    @Option(help: ArgumentHelp("Data file (x0, cond) to measure the student on during training: the log's heldout_loss, denoising MSE at fixed noise.", valueName: "file"))
    var heldout: String?

    @Option(name: .customLong("heldout-every"), help: "Measure on --heldout every N iterations (and after the last).")
    var heldoutEvery = Self.defaults.heldoutEvery

    @Option(name: .customLong("checkpoint-every"), help: "Write the resumable state every N iterations (and at the end).")
    var checkpointEvery: Int?

    @Flag(help: "Continue from the resumable state; the result is the same bytes as an uninterrupted run.")
    var resume = false

    @Option(help: ArgumentHelp("Resumable state file (default OUT.state.safetensors; required when OUT is -).", valueName: "file"))
    var state: String?

    func validate(output: String) throws {
        if let checkpointEvery, checkpointEvery < 1 { throw ValidationError("--checkpoint-every must be at least 1") }
        guard steps >= 1 else { throw ValidationError("--steps and --batch must be at least 1") }
        guard heldoutEvery >= 1 else { throw ValidationError("--heldout-every must be at least 1") }
        try checkBatch(ranks: DataParallel.announcedSize)
        if statePath(output: output) == nil && (resume || checkpointEvery != nil) {
            throw ValidationError("--resume and --checkpoint-every need --state FILE when OUT is standard output")
        }
    }

    /// Each of the MPI ranks takes an equal share of the global batch.
    func checkBatch(ranks: Int) throws {
        guard optimizer.batch % ranks == 0 else {
            throw ValidationError("--batch \(optimizer.batch) is the global batch: it must be a multiple of the \(ranks) MPI ranks")
        }
    }

    /// Joins the MPI ranks when mpirun started this process (a no-op otherwise); first thing a
    /// training command does, so that an error on any rank aborts them all.
    func joinRanks() throws {
        let parallel = try DataParallel.join()
        do { try checkBatch(ranks: parallel.size) } catch {
            printError("\(error)")
            DataParallel.abortIfJoined(64)
        }
    }

    /// Where the resumable state lives (the settings' rule, before the options are read as settings).
    func statePath(output: String) -> String? {
        var settings = TrainingSettings()
        settings.state = state
        return settings.statePath(output: output)
    }
}

/// The optimizer and the seed: `OptimizerSettings`, part of the run description.
struct OptimizerOptions: SettingsOptions {
    typealias Settings = OptimizerSettings
    private static let defaults = OptimizerSettings()

    @Option(help: "Items per batch.")
    var batch = Self.defaults.batch

    @Option(help: "AdamW learning rate (unlearn: the lower level's).")
    var lr = Self.defaults.lr

    @Option(help: "Linear warmup over this many updates, then constant.")
    var warmup = Self.defaults.warmup

    @Option(name: .customLong("weight-decay"), help: "AdamW decoupled weight decay.")
    var weightDecay = Self.defaults.weightDecay

    @Option(help: "Keep an exponential moving average of the weights with this decay and write it instead of the raw weights.")
    var ema: Float?

    @Option(name: .customLong("max-grad-norm"), help: "Clip the global gradient norm to this value (0 disables).")
    var maxGradNorm = Self.defaults.maxGradNorm

    @Option(help: "Seed of every random draw (batches, timesteps, noise, dropout, generated forget images).")
    var seed = Self.defaults.seed

    func validate() throws {
        try requireFinite(["--lr": lr, "--weight-decay": weightDecay, "--ema": ema, "--max-grad-norm": maxGradNorm])
        guard batch >= 1 else { throw ValidationError("--steps and --batch must be at least 1") }
        guard lr > 0, warmup >= 0, weightDecay >= 0, maxGradNorm >= 0 else {
            throw ValidationError("--lr must be positive; --warmup, --weight-decay and --max-grad-norm not negative")
        }
        if let ema, !(ema > 0 && ema < 1) { throw ValidationError("--ema must be between 0 and 1 (exclusive)") }
    }
}

/// The lower-level loss options (finetune, unlearn): `LowerLevelSettings`, part of the run description.
struct LowerLevelOptions: SettingsOptions {
    typealias Settings = LowerLevelSettings
    private static let defaults = LowerLevelSettings()

    @Option(name: .customLong("w-diff"), help: "Weight of the denoising loss L_diff.")
    var wDiff = Self.defaults.wDiff

    @Option(name: .customLong("w-out"), help: "Weight of output distillation L_outKD (with a teacher).")
    var wOut = Self.defaults.wOut

    @Option(name: .customLong("w-feat"), help: "Weight of feature distillation L_featKD over every block output (with a teacher).")
    var wFeat = Self.defaults.wFeat

    @Option(name: .customLong("min-snr-gamma"), help: "Weight L_diff per sample by min-SNR-gamma (the paper uses 5).")
    var minSnrGamma: Float?

    @Option(name: .customLong("uncond-prob"), help: "Replace a prompt by the data file's uncond with this probability (classifier-free-guidance dropout).")
    var uncondProb = Self.defaults.uncondProb

    func validate() throws {
        try requireFinite(["--w-diff": wDiff, "--w-out": wOut, "--w-feat": wFeat, "--min-snr-gamma": minSnrGamma, "--uncond-prob": uncondProb])
        guard wDiff >= 0, wOut >= 0, wFeat >= 0 else { throw ValidationError("--w-diff, --w-out and --w-feat must not be negative") }
        if let minSnrGamma, minSnrGamma <= 0 { throw ValidationError("--min-snr-gamma must be positive") }
        guard uncondProb >= 0 && uncondProb <= 1 else { throw ValidationError("--uncond-prob must be in [0, 1]") }
    }
}

extension ErasureMethod: ExpressibleByArgument {}

/// How a command spells the option choosing the upper objective: erase's `--method`; unlearn's
/// `--upper`, with `--method` kept as an alias.
protocol UpperObjectiveSpelling {
    static var names: NameSpecification { get }
    static var help: String { get }
}

enum EraseSpelling: UpperObjectiveSpelling {
    static var names: NameSpecification { [.customLong("method")] }
    static var help: String {
        "How the concept is removed: esd (teacher-guided ESD), ablation (toward the anchor prompts) or uce (the closed-form edit of the cross-attention projections)."
    }
}

enum UnlearnSpelling: UpperObjectiveSpelling {
    static var names: NameSpecification { [.customLong("upper"), .customLong("method")] }
    static var help: String {
        "The upper objective L_CU: esd (teacher-guided ESD), ablation (toward the anchor prompts) or uce (UCE's least-squares objective on the cross-attention projections); --method is an alias."
    }
}

/// The concept to remove (erase, unlearn): `ForgetSettings`; the file or prompts are inputs, `concept` is
/// part of the run description.
struct ForgetOptions<Spelling: UpperObjectiveSpelling>: SettingsOptions {
    typealias Settings = ForgetSettings

    @Option(help: ArgumentHelp("Forget file: cond [M,S,D] and uncond [S,D]; optional x0 [M,C,H,W] and anchor [M,S,D]; SDXL also cond_pooled, time_ids, uncond_pooled (formats/training-data.md).", valueName: "file"))
    var forget: String?

    @Option(name: .customLong("forget-prompt"), help: ArgumentHelp("Instead of --forget: a prompt of the concept, encoded by the --teacher pipeline's text encoder (repeat for more).", valueName: "text"))
    var prompts: [String] = []

    @OptionGroup var concept: ConceptOptions<Spelling>

    func validate() throws {
        guard (forget == nil) != prompts.isEmpty else { throw ValidationError("give --forget FILE or --forget-prompt TEXT..., not both") }
    }
}

/// How the concept is removed: `ConceptSettings`.
struct ConceptOptions<Spelling: UpperObjectiveSpelling>: SettingsOptions {
    typealias Settings = ConceptSettings

    @Option(name: Spelling.names, help: ArgumentHelp(Spelling.help, valueName: "method"))
    var method = ConceptSettings().method

    @Option(help: "ESD guidance strength eta.")
    var eta = ConceptSettings().eta

    @Option(name: .customLong("forget-sample-steps"), help: "DDIM steps for the teacher's forget images when the forget file has no x0.")
    var forgetSampleSteps = ConceptSettings().forgetSampleSteps

    @Option(name: .customLong("forget-guidance"), help: "Guidance scale of those images.")
    var forgetGuidance = ConceptSettings().forgetGuidance

    func validate() throws {
        try requireFinite(["--eta": eta, "--forget-guidance": forgetGuidance])
        guard forgetSampleSteps >= 1 else { throw ValidationError("--forget-sample-steps must be at least 1") }
    }
}
