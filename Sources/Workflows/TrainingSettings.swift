import Diffusion
import Training

/// What every training subcommand (finetune, erase, unlearn) is told, as plain values.
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
    public var wDiff: Float = 1
    public var wOut: Float = 2
    public var wFeat: Float = 0.1
    public var minSnrGamma: Float?
    public var uncondProb: Float = 0

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
    /// The forget file (formats/training-data.md).
    public var forget: String
    public var method: ErasureMethod = .esd
    public var eta: Float = 1
    public var forgetSampleSteps = 25
    public var forgetGuidance: Float = 5

    public init(forget: String) { self.forget = forget }

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
