/// The options that shape a training run's weights, each declared once: its name, type and default are
/// a stored property of one of these values. They are `Codable`, so the run description stores them whole
/// (`RunDescription`) and `--resume` compares them field by field; the objectives and methods read them
/// directly; the CLI's option groups decode into them by the same field names (formats/training.md).
/// A new option is one property here, one `@Option` of the same name in the CLI, and its use.

/// The optimizer and the random stream (every training command).
public struct OptimizerSettings: Codable, Equatable, Sendable {
    /// The global batch, shared by the MPI ranks.
    public var batch = 8
    public var lr: Float = 1e-4
    /// Linear warmup over this many updates, then a constant rate.
    public var warmup = 0
    public var weightDecay: Float = 1e-2
    /// The decay of an exponential moving average written instead of the raw weights.
    public var ema: Float?
    /// Global gradient-norm clip; 0 disables it.
    public var maxGradNorm: Float = 1
    public var seed: UInt64 = 0

    public init() {}

    /// AdamW with these settings; the upper level of unlearn passes its own rate and warmup.
    public func optimizer(learningRate: Float? = nil, warmup: Int? = nil) -> ModelOptimizer {
        ModelOptimizer(learningRate: learningRate ?? lr, warmup: warmup ?? self.warmup, weightDecay: weightDecay,
                       maxGradNorm: maxGradNorm > 0 ? maxGradNorm : nil)
    }
}

/// The lower level's loss, L_ft = w_diff L_diff + w_out L_outKD + w_feat L_featKD (finetune, unlearn);
/// the defaults are the paper's code's.
public struct LowerLevelSettings: Codable, Equatable, Sendable {
    public var wDiff: Float = 1
    public var wOut: Float = 2
    public var wFeat: Float = 0.1
    /// Weight L_diff per sample by min-SNR-gamma.
    public var minSnrGamma: Float?
    /// Probability of replacing an item's prompt by the empty prompt (classifier-free-guidance dropout).
    public var uncondProb: Float = 0

    public init() {}
}

extension ErasureMethod: Codable {}

/// The upper level, L_CU: how the concept is removed, and how the teacher draws forget images a forget
/// file lacks (erase, unlearn).
public struct ConceptSettings: Codable, Equatable, Sendable {
    public var method = ErasureMethod.esd
    /// ESD's guidance strength.
    public var eta: Float = 1
    public var forgetSampleSteps = 25
    public var forgetGuidance: Float = 5

    public init() {}
}

/// How unlearn schedules the two levels.
public enum UnlearnSchedule: String, CaseIterable, Codable, Sendable {
    case penalty
    case interleaved
}

/// `--schedule penalty`: K inner steps of the lower-level copy per outer iteration, and lambda at outer
/// iteration i = `lambda` * min(1, (i + 1) / `lambdaRamp`), constant when the ramp is 0.
public struct PenaltySettings: Codable, Equatable, Sendable {
    public var innerSteps = 20
    public var lambda: Float = 100
    public var lambdaRamp = 0

    public init(innerSteps: Int = 20, lambda: Float = 100, lambdaRamp: Int = 0) {
        self.innerSteps = innerSteps
        self.lambda = lambda
        self.lambdaRamp = lambdaRamp
    }

    public func lambda(at iteration: Int) -> Float {
        guard lambdaRamp > 0, iteration + 1 < lambdaRamp else { return lambda }
        return lambda * Float(iteration + 1) / Float(lambdaRamp)
    }
}

/// `--schedule interleaved`: an upper step every `upperEvery`-th iteration.
public struct InterleavedSettings: Codable, Equatable, Sendable {
    public var upperEvery = 10

    public init() {}
}

/// What the robust upper level attacks with (`--upper-attack`).
public enum UpperAttackKind: String, CaseIterable, Codable, Sendable {
    /// Offsets of the forget prompts' encoder states found by projected gradient ascent on L_CU.
    case adversarial
}

/// The robust upper level (`unlearn --upper-attack adversarial`, `UpperAttack`): L_CU evaluated on the
/// forget prompts' encoder states plus an offset found against the current student, refreshed every
/// `every` upper steps by `steps` projected gradient steps, each token row of the offset in an L2 ball
/// of `radius` (the ball of `eval --attack adversarial`).
public struct UpperAttackSettings: Codable, Equatable, Sendable {
    /// nil: the plain upper level (the other fields do not apply and are not part of the run).
    public var kind: UpperAttackKind?
    public var every = 1
    public var steps = 3
    public var radius: Float = 1.5

    public init() {}
}

/// unlearn's own options. Both schedules' options are held (the CLI parses both); `described` keeps only
/// the chosen schedule's, so an option that does not apply is not part of the run.
public struct UnlearnSettings: Codable, Equatable, Sendable {
    public var schedule = UnlearnSchedule.penalty
    public var penalty: PenaltySettings? = PenaltySettings()
    /// The upper level's AdamW rate and warmup (default the lower level's).
    public var upperLr: Float?
    public var upperWarmup: Int?
    public var interleaved: InterleavedSettings? = InterleavedSettings()
    /// The robust upper level; absent from the run description when `kind` is nil.
    public var attack: UpperAttackSettings? = UpperAttackSettings()

    public init() {}

    /// These settings as the run description holds them: the other schedule's options removed, the
    /// upper optimizer's defaults resolved from `optimizer` (so `--upper-lr` equal to `--lr` is the same
    /// run), the attack's options only with an attack.
    public func described(optimizer: OptimizerSettings) -> UnlearnSettings {
        var run = self
        run.upperLr = upperLr ?? optimizer.lr
        run.upperWarmup = upperWarmup ?? optimizer.warmup
        switch schedule {
        case .penalty: run.interleaved = nil
        case .interleaved: run.penalty = nil
        }
        if attack?.kind == nil { run.attack = nil }
        return run
    }
}

/// UCE inside `unlearn`: `--init uce` (start from the closed-form edit) and the scales of the
/// embeddings of `--upper uce`'s objective and of the initial edit (formats/uce.md). In the run
/// description only when either is used.
public struct UCEPhaseSettings: Codable, Equatable, Sendable {
    /// What the phase starts from: `uce`, the closed-form edit of STUDENT; nil, STUDENT as it is.
    public var initEdit: UCEInitialEdit?
    public var eraseScale = ClosedFormEdit.Default.eraseScale
    public var preserveScale = ClosedFormEdit.Default.preserveScale
    public var lambda = ClosedFormEdit.Default.lambda

    public init() {}
}

/// `unlearn --init`: the edit the bilevel phase starts from.
public enum UCEInitialEdit: String, Codable, CaseIterable, Sendable {
    case uce
}
