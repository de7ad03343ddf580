import Diffusion
import Foundation
import TensorFormats

/// Everything that shapes a training run's weights, so that `--resume` continues only the run the state
/// was written by: the options (not `--steps`, so a finished run can be extended), the scheduler, and the
/// sha256 of every input. Stored in the state file as JSON (formats/training.md) and compared field by
/// field; options that do not apply to a command (or to an unlearn schedule) are nil. The options are the
/// settings values themselves (RunSettings.swift), so a new option is part of the run without a line here.
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

    /// The shape of the description as the state file stores it; a state of another format is refused
    /// with a message saying so (formats/training.md). 2: the settings stored as nested values.
    public static let format = 2

    public var format = RunDescription.format
    public var command: String
    /// Every training command.
    public var optimizer: OptimizerSettings
    public var scheduler: SchedulerConfig
    /// The lower level (finetune, unlearn).
    public var lower: LowerLevelSettings?
    /// The upper level (erase, unlearn).
    public var upper: ConceptSettings?
    /// unlearn, with the chosen schedule's options only (`UnlearnSettings.described`).
    public var unlearn: UnlearnSettings?
    /// unlearn's UCE (`--upper uce`, `--init uce`), when used.
    public var uce: UCEPhaseSettings?
    public var inputs: Inputs

    public init(command: String, optimizer: OptimizerSettings, scheduler: SchedulerConfig, lower: LowerLevelSettings? = nil,
                upper: ConceptSettings? = nil, unlearn: UnlearnSettings? = nil, inputs: Inputs) {
        self.command = command
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.lower = lower
        self.upper = upper
        self.unlearn = unlearn.map { $0.described(optimizer: optimizer) }
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
            let l = structure(left.value), r = structure(right.value)
            if let l, let r {
                if let found = firstDifference(l, r, prefix: name + ".") { return found }
                continue
            }
            let x = text(left.value), y = text(right.value)
            if x != y { return (name, x, y) }
        }
        return nil
    }

    /// The mirror of a nested settings value (present optionals unwrapped), so its fields are compared one
    /// by one; nil for a leaf or an absent value.
    private static func structure(_ value: Any) -> Mirror? {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional { return mirror.children.first.flatMap { structure($0.value) } }
        return mirror.displayStyle == .struct ? mirror : nil
    }

    /// A field's value as shown in a message: optionals unwrapped, absent values as "none", a settings
    /// value that one side lacks as "set".
    private static func text(_ value: Any) -> String {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional {
            guard let wrapped = mirror.children.first?.value else { return "none" }
            return text(wrapped)
        }
        if mirror.displayStyle == .struct { return "set" }
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

    /// What a state's stored text holds.
    public enum Stored: Equatable, Sendable {
        case description(RunDescription)
        /// A description of another `format` (nil: the flat shape of format 1, which had no such field).
        case otherFormat(Int?)
        /// No run description at all.
        case unreadable
    }

    /// Reads what `json()` wrote, telling a description of another format from text that is none.
    public static func read(json text: String) -> Stored {
        struct Probe: Decodable { var format: Int?; var command: String? }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let bytes = Data(text.utf8)
        guard let probe = try? decoder.decode(Probe.self, from: bytes), probe.command != nil else { return .unreadable }
        guard probe.format == format else { return .otherFormat(probe.format) }
        guard let value = try? decoder.decode(RunDescription.self, from: bytes) else { return .unreadable }
        return .description(value)
    }
}
