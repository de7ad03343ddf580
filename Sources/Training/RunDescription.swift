import Diffusion
import Foundation
import TensorFormats

/// Everything that shapes a training run's weights, so that `--resume` continues only the run the state
/// was written by: the options (not `--steps`, so a finished run can be extended), the scheduler, and the
/// sha256 of every input. Stored in the state file as JSON (formats/training.md) and compared field by
/// field; options that do not apply to a command (or to an unlearn schedule) are nil.
public struct RunDescription: Codable, Equatable, Sendable {
    /// The sha256 of each input (`nil` when the command has no such input). A regular file is hashed as
    /// bytes; a folder, shard index or standard input by its content (formats/training.md).
    public struct Inputs: Codable, Equatable, Sendable {
        public var student: String?
        public var initConfig: String?
        public var teacher: String?
        /// The sha256 of `--retain-prompts`' or `--retain-images`' prompts (their compact JSON array);
        /// `data` is then the made data's (formats/training.md). Before `data`, so a resume with other
        /// prompts is refused naming the prompts.
        public var retainPrompts: String?
        public var data: String?
        /// The sha256 of `--forget-prompt`'s prompts; `forget` is then the encoded prompts'.
        public var forgetPrompts: String?
        public var forget: String?

        public init(student: String? = nil, initConfig: String? = nil, teacher: String? = nil, data: String? = nil,
                    forget: String? = nil, forgetPrompts: String? = nil, retainPrompts: String? = nil) {
            self.student = student
            self.initConfig = initConfig
            self.teacher = teacher
            self.data = data
            self.forget = forget
            self.forgetPrompts = forgetPrompts
            self.retainPrompts = retainPrompts
        }
    }

    public var command: String
    // every training command
    public var batch: Int
    public var lr: Float
    public var warmup: Int
    public var weightDecay: Float
    public var ema: Float?
    public var maxGradNorm: Float
    public var seed: UInt64
    public var scheduler: SchedulerConfig
    // the lower level (finetune, unlearn)
    public var wDiff: Float?
    public var wOut: Float?
    public var wFeat: Float?
    public var minSnrGamma: Float?
    public var uncondProb: Float?
    // the upper level (erase, unlearn)
    public var method: String?
    public var eta: Float?
    public var forgetSampleSteps: Int?
    public var forgetGuidance: Float?
    // unlearn
    public var schedule: String?
    public var innerSteps: Int?
    public var lambda: Float?
    public var lambdaRamp: Int?
    public var upperLr: Float?
    public var upperWarmup: Int?
    public var upperEvery: Int?
    // unlearn's UCE: `--init uce`, and the scales of the UCE embeddings (formats/uce.md)
    public var initEdit: String?
    public var uceEraseScale: Float?
    public var ucePreserveScale: Float?
    public var uceLambda: Float?
    public var inputs: Inputs

    public init(command: String, batch: Int, lr: Float, warmup: Int, weightDecay: Float, ema: Float?, maxGradNorm: Float,
                seed: UInt64, scheduler: SchedulerConfig, inputs: Inputs) {
        self.command = command
        self.batch = batch
        self.lr = lr
        self.warmup = warmup
        self.weightDecay = weightDecay
        self.ema = ema
        self.maxGradNorm = maxGradNorm
        self.seed = seed
        self.scheduler = scheduler
        self.inputs = inputs
    }

    /// The first field (in declaration order, nested fields as `scheduler.betaEnd`) whose value differs,
    /// with both values as text; nil when the descriptions are equal.
    public func firstDifference(from other: RunDescription) -> (field: String, stored: String, given: String)? {
        Self.firstDifference(Mirror(reflecting: self), Mirror(reflecting: other), prefix: "")
    }

    private static func firstDifference(_ a: Mirror, _ b: Mirror, prefix: String) -> (field: String, stored: String, given: String)? {
        for (left, right) in zip(a.children, b.children) {
            let name = prefix + (left.label ?? "?")
            let l = Mirror(reflecting: left.value), r = Mirror(reflecting: right.value)
            if l.displayStyle == .struct && r.displayStyle == .struct {
                if let found = firstDifference(l, r, prefix: name + ".") { return found }
                continue
            }
            let x = text(left.value), y = text(right.value)
            if x != y { return (name, x, y) }
        }
        return nil
    }

    /// A field's value as shown in a message: optionals unwrapped, absent values as "none".
    private static func text(_ value: Any) -> String {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional {
            guard let wrapped = mirror.children.first?.value else { return "none" }
            return text(wrapped)
        }
        if let e = value as? any RawRepresentable { return "\(e.rawValue)" }
        return "\(value)"
    }

    /// The description as the state file stores it (sorted keys; non-finite numbers as strings).
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Reads what `json()` wrote; nil when the text is not a run description.
    public init?(json text: String) {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        guard let value = try? decoder.decode(RunDescription.self, from: Data(text.utf8)) else { return nil }
        self = value
    }
}
