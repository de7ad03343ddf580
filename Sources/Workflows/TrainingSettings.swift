import Diffusion
import Training

/// What every training subcommand (finetune, erase, unlearn) is told, as plain values. The initial
/// values of these settings types are the options' defaults, written once: the CLI's options start
/// from them (and its help shows them), and the objectives' defaults come from Training.
public struct TrainingSettings: Sendable {
    public var steps = 1000
    public var batch = 8
    public var lr: Float = 1e-4
    public var warmup = 0
    public var weightDecay: Float = 1e-2
    public var ema: Float?
    public var maxGradNorm: Float = 1
    public var seed: UInt64 = 0
    /// scheduler_config.json to train with instead of the model's.
    public var scheduler: String?
    public var log: String?
    public var checkpointEvery: Int?
    public var resume = false
    public var state: String?
    /// `--heldout`: a data file the student is measured on every `heldoutEvery` iterations (the log's
    /// `heldout_loss`; formats/training.md).
    public var heldout: String?
    public var heldoutEvery = 50

    public init() {}

    /// Where the resumable state lives (default OUT.state.safetensors; none when OUT is standard output).
    public func statePath(output: String) -> String? { state ?? (output == "-" ? nil : output + ".state.safetensors") }

    public func optimizer(learningRate: Float? = nil, warmup: Int? = nil) -> ModelOptimizer {
        ModelOptimizer(learningRate: learningRate ?? lr, warmup: warmup ?? self.warmup, weightDecay: weightDecay,
                       maxGradNorm: maxGradNorm > 0 ? maxGradNorm : nil)
    }

    /// The run description with these options (not --steps, so a finished run can be extended).
    func describe(_ command: String, scheduler: SchedulerConfig, inputs: RunDescription.Inputs) -> RunDescription {
        RunDescription(command: command, batch: batch, lr: lr, warmup: warmup, weightDecay: weightDecay, ema: ema,
                       maxGradNorm: maxGradNorm, seed: seed, scheduler: scheduler, inputs: inputs)
    }
}

/// The lower level's loss weights (finetune, unlearn).
public struct LowerLevelSettings: Sendable {
    public var wDiff = LowerLevelObjective.Default.diffusionWeight
    public var wOut = LowerLevelObjective.Default.outputWeight
    public var wFeat = LowerLevelObjective.Default.featureWeight
    public var minSnrGamma: Float?
    public var uncondProb = LowerLevelObjective.Default.uncondProbability

    public init() {}

    func objective(_ schedule: NoiseSchedule) -> LowerLevelObjective {
        var o = LowerLevelObjective(schedule: schedule)
        o.diffusionWeight = wDiff
        o.outputWeight = wOut
        o.featureWeight = wFeat
        o.minSNRGamma = minSnrGamma
        o.uncondProbability = uncondProb
        return o
    }

    func describe(into run: inout RunDescription) {
        run.wDiff = wDiff
        run.wOut = wOut
        run.wFeat = wFeat
        run.minSnrGamma = minSnrGamma
        run.uncondProb = uncondProb
    }
}

/// The upper level: the concept to remove and how (erase, unlearn).
public struct ForgetSettings: Sendable {
    /// The forget file (formats/training-data.md); nil when the concept is given as `prompts`.
    public var forget: String?
    /// `--forget-prompt`: prompts encoded by the teacher pipeline's text encoder, used as a forget file of
    /// those prompts without x0 would be.
    public var prompts: [String] = []
    public var method = ConceptObjective.Default.method
    public var eta = ConceptObjective.Default.eta
    public var forgetSampleSteps = 25
    public var forgetGuidance: Float = 5

    public init(forget: String) { self.forget = forget }

    public init(prompts: [String]) { self.prompts = prompts }

    func objective(_ schedule: NoiseSchedule) -> ConceptObjective {
        var o = ConceptObjective(schedule: schedule)
        o.method = method
        o.eta = eta
        return o
    }

    func describe(into run: inout RunDescription) {
        run.method = method.rawValue
        run.eta = eta
        run.forgetSampleSteps = forgetSampleSteps
        run.forgetGuidance = forgetGuidance
    }
}

/// Where the lower level's data comes from (finetune, unlearn): a data file, or the teacher pipeline's own
/// samples for prompts, or pictures encoded by its VAE (formats/training.md, "Prompt-driven training").
public struct RetainSettings: Sendable {
    public enum Source: Sendable, Equatable {
        /// `--data FILE`.
        case data(String)
        /// `--retain-prompts FILE`: the teacher's DDIM + CFG samples for each prompt.
        case prompts(String)
        /// `--retain-images DIR`: PNG files and the sidecar DIR/prompts.txt.
        case images(String)
    }

    public var source: Source
    /// Where made data is written as a data file (default OUT.retain.safetensors; none for OUT `-`).
    public var cache: String?
    public var samplesPerPrompt = 1
    public var sampleSteps = 25
    public var guidance: Float = 5
    /// Latent side of the teacher's samples (default the UNet config's sample_size).
    public var size: Int?

    public init(_ source: Source) { self.source = source }

    public init(data: String) { self.init(.data(data)) }

    /// The file or folder read, and its option, for the output rule.
    var input: (path: String?, role: String) {
        switch source {
        case .data(let path): (path, "--data")
        case .prompts(let path): (path, "--retain-prompts")
        case .images(let path): (path, "--retain-images")
        }
    }

    /// The data file written with made data, if any.
    func cachePath(output: String) -> String? {
        if case .data = source { return nil }
        return cache ?? (output == "-" ? nil : output + ".retain.safetensors")
    }
}

/// How unlearn schedules the two levels.
public enum UnlearnSchedule: String, CaseIterable, Sendable {
    case penalty
    case interleaved
}

/// unlearn's own options.
public struct UnlearnSettings: Sendable {
    public var schedule = UnlearnSchedule.penalty
    public var innerSteps = 20
    public var lambda: Float = 100
    public var lambdaRamp = 0
    public var upperLr: Float?
    public var upperWarmup: Int?
    public var upperEvery = 10

    public init() {}

    /// Only the options of the chosen schedule are part of the run.
    func describe(into run: inout RunDescription) {
        run.schedule = schedule.rawValue
        run.upperLr = upperLr ?? run.lr
        run.upperWarmup = upperWarmup ?? run.warmup
        switch schedule {
        case .penalty:
            run.innerSteps = innerSteps
            run.lambda = lambda
            run.lambdaRamp = lambdaRamp
        case .interleaved:
            run.upperEvery = upperEvery
        }
    }
}

/// Where a command's output goes.
public struct OutputSettings: Sendable {
    public var path: String
    /// Binary output to a terminal.
    public var force = false
    public var quiet = false

    public init(path: String, force: Bool = false, quiet: Bool = false) {
        self.path = path
        self.force = force
        self.quiet = quiet
    }
}
