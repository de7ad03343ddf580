import ArgumentParser
import Training
import Workflows

/// `erase --method uce`: the closed-form edit's options (formats/uce.md). The forget prompts and the
/// forget file are ForgetOptions' `--forget-prompt` and `--forget`.
struct UCEOptions: ParsableArguments {
    private static let defaults = UCESettings()

    @Option(name: .customLong("target-prompt"), help: ArgumentHelp("--method uce: the prompt each --forget-prompt is mapped to (once for all, or once per --forget-prompt; default the empty prompt; the authors use 'art' for styles).", valueName: "text"))
    var targetPrompts: [String] = []

    @Option(name: .customLong("preserve-prompts"), help: ArgumentHelp("--method uce: prompts whose last tokens keep their image, one per line.", valueName: "file"))
    var preservePrompts: String?

    @Option(name: .customLong("data"), help: ArgumentHelp("--method uce with --forget: the retain data file whose prompts' token rows are preserved.", valueName: "file"))
    var data: String?

    @Option(name: .customLong("erase-scale"), help: "--method uce: weight e of the erased embeddings.")
    var eraseScale = Self.defaults.eraseScale

    @Option(name: .customLong("preserve-scale"), help: "--method uce: weight p of the preserved embeddings.")
    var preserveScale = Self.defaults.preserveScale

    @Option(name: .customLong("lambda"), help: "--method uce: weight of ‖W − W_old‖² (keeps the system positive definite; must be positive).")
    var lambda = Self.defaults.lambda

    /// Whether an option of this group was given (each differs from its default).
    var anyGiven: String? {
        if !targetPrompts.isEmpty { return "--target-prompt" }
        if preservePrompts != nil { return "--preserve-prompts" }
        if data != nil { return "--data" }
        if eraseScale != Self.defaults.eraseScale { return "--erase-scale" }
        if preserveScale != Self.defaults.preserveScale { return "--preserve-scale" }
        if lambda != Self.defaults.lambda { return "--lambda" }
        return nil
    }

    func validate() throws {
        try requireFinite(["--erase-scale": eraseScale, "--preserve-scale": preserveScale, "--lambda": lambda])
        guard eraseScale >= 0, preserveScale >= 0 else { throw ValidationError("--erase-scale and --preserve-scale must not be negative") }
        guard lambda > 0 else { throw ValidationError("--lambda must be positive: it keeps UCE's system positive definite") }
    }

    /// Refuses what does not apply to the edit: the training options, and prompts mixed with world files.
    func check(forget: ForgetOptions<EraseSpelling>, training: TrainingOptions, teacher: String?) throws {
        let trained = TrainingSettings(), optimized = OptimizerSettings(), o = training.optimizer
        let given: [(String, Bool)] = [
            ("--steps", training.steps != trained.steps), ("--batch", o.batch != optimized.batch), ("--lr", o.lr != optimized.lr),
            ("--warmup", o.warmup != optimized.warmup), ("--weight-decay", o.weightDecay != optimized.weightDecay),
            ("--ema", o.ema != nil), ("--max-grad-norm", o.maxGradNorm != optimized.maxGradNorm),
            ("--seed", o.seed != optimized.seed), ("--scheduler", training.scheduler != nil), ("--log", training.log != nil),
            ("--heldout", training.heldout != nil), ("--heldout-every", training.heldoutEvery != trained.heldoutEvery),
            ("--checkpoint-every", training.checkpointEvery != nil), ("--resume", training.resume), ("--state", training.state != nil),
            ("--eta", forget.concept.eta != ConceptSettings().eta),
            ("--forget-sample-steps", forget.concept.forgetSampleSteps != ConceptSettings().forgetSampleSteps),
            ("--forget-guidance", forget.concept.forgetGuidance != ConceptSettings().forgetGuidance),
        ]
        if let name = given.first(where: \.1)?.0 { throw ValidationError("\(name) is a training option: --method uce is a closed-form edit and trains nothing") }
        // Under mpirun every rank would compute and write the same OUT: the edit is one process's work.
        if DataParallel.announcedSize > 1 { throw ValidationError("erase --method uce runs in one process, not under mpirun") }
        if forget.forget != nil {
            if !targetPrompts.isEmpty || preservePrompts != nil {
                throw ValidationError("--target-prompt and --preserve-prompts go with --forget-prompt; with --forget the targets are the file's anchor and the preserved tokens --data's")
            }
            if teacher != nil { throw ValidationError("--teacher gives the text encoder of --forget-prompt; --forget files hold their embeddings") }
        } else {
            if data != nil { throw ValidationError("--data goes with --forget (concept-world files); with --forget-prompt use --preserve-prompts FILE") }
            if targetPrompts.count > 1 && targetPrompts.count != forget.prompts.count {
                throw ValidationError("give one --target-prompt, or one per --forget-prompt (\(forget.prompts.count)), not \(targetPrompts.count)")
            }
        }
    }

    func settings(forget: ForgetOptions<EraseSpelling>, teacher: String?) -> UCESettings {
        var s = UCESettings()
        s.forgetPrompts = forget.prompts
        s.targetPrompts = targetPrompts
        s.preservePrompts = preservePrompts
        s.forget = forget.forget
        s.data = data
        s.textEncoder = teacher
        s.eraseScale = eraseScale
        s.preserveScale = preserveScale
        s.lambda = lambda
        return s
    }
}
