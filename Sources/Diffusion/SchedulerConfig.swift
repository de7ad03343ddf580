import Foundation
import TensorFormats

/// How betas grow over the training timesteps (diffusers' `beta_schedule`).
public enum BetaSchedule: String, Sendable, CaseIterable, Codable {
    case linear
    case scaledLinear = "scaled_linear"
    case squaredcosCapV2 = "squaredcos_cap_v2"
}

/// What the model predicts (diffusers' `prediction_type`).
public enum PredictionType: String, Sendable, CaseIterable, Codable {
    case epsilon
    case vPrediction = "v_prediction"
    case sample
}

/// How `DDIMSampler.timesteps(count:)` spaces the inference timesteps (diffusers' `timestep_spacing`).
public enum TimestepSpacing: String, Sendable, CaseIterable, Codable {
    case leading, trailing, linspace
}

/// An error reading a scheduler config: the key and what was wrong with it.
public struct SchedulerConfigError: ToolError, Equatable {
    public var key: String
    public var reason: String
    /// The scheduler_config.json read, once the caller that opened it has set it.
    public var file: String?

    public init(key: String, message: String, file: String? = nil) {
        self.key = key
        self.reason = message
        self.file = file
    }

    public var code: ErrorCode { .invalidSchedulerConfig }
    public var message: String { "\(key): \(reason)" }
    public var tensor: String? { nil }
    public var description: String { oneLine }
}

extension ErrorCode {
    /// A scheduler_config.json the schedulers cannot use (formats/training.md).
    public static let invalidSchedulerConfig = ErrorCode(rawValue: "invalid-scheduler-config")
}

/// The fields of a diffusers `scheduler_config.json` (DDPMScheduler / DDIMScheduler) that the
/// schedulers here use; defaults are DDIMScheduler's.
public struct SchedulerConfig: Sendable, Equatable, Codable {
    public var numTrainTimesteps = 1000
    public var betaStart = 0.0001
    public var betaEnd = 0.02
    public var betaSchedule = BetaSchedule.linear
    public var predictionType = PredictionType.epsilon
    public var setAlphaToOne = true
    public var stepsOffset = 0
    public var timestepSpacing = TimestepSpacing.leading
    public var clipSample = true
    public var clipSampleRange = 1.0

    public init() {}

    /// The most training timesteps a config may declare (DDPM and Stable Diffusion use 1,000).
    public static let maximumTrainTimesteps = 100_000

    /// Stable Diffusion 1.x/2.x's scheduler settings (scaled_linear 0.00085...0.012, offset 1).
    public static var stableDiffusion: SchedulerConfig {
        var c = SchedulerConfig()
        c.betaStart = 0.00085
        c.betaEnd = 0.012
        c.betaSchedule = .scaledLinear
        c.setAlphaToOne = false
        c.stepsOffset = 1
        c.clipSample = false
        return c
    }

    /// Parses `scheduler_config.json`. Keys this engine cannot honour with a non-default value
    /// (`trained_betas`, `thresholding`, `rescale_betas_zero_snr`) are refused by name.
    public init(json: String) throws {
        guard case .object(let members)? = try? JSONParser.parse(json) else {
            throw SchedulerConfigError(key: "(file)", message: "not a JSON object")
        }
        let object = Dictionary(members.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
        func number(_ key: String) throws -> Double? {
            guard let v = object[key], v != .null else { return nil }
            guard let n = v.doubleValue else {
                throw SchedulerConfigError(key: key, message: "expected a number")
            }
            return n
        }
        func flag(_ key: String) throws -> Bool? {
            guard let v = object[key], v != .null else { return nil }
            guard case .bool(let b) = v else { throw SchedulerConfigError(key: key, message: "expected true or false") }
            return b
        }
        func choice<E: RawRepresentable & CaseIterable>(_ key: String, _: E.Type) throws -> E? where E.RawValue == String {
            guard let v = object[key], v != .null else { return nil }
            guard let s = v.stringValue, let e = E(rawValue: s) else {
                let allowed = E.allCases.map(\.rawValue).joined(separator: ", ")
                throw SchedulerConfigError(key: key, message: "\(JSONWriter.compact(v)) is not supported (expected one of \(allowed))")
            }
            return e
        }
        // Every number is range-checked: the file is input, and these size arrays and loops.
        if let v = try number("num_train_timesteps") {
            guard v >= 1, v <= Double(Self.maximumTrainTimesteps), v == v.rounded() else {
                throw SchedulerConfigError(key: "num_train_timesteps", message: "expected an integer in 1...\(Self.maximumTrainTimesteps)")
            }
            numTrainTimesteps = Int(v)
        }
        if let v = try number("beta_start") { betaStart = v }
        if let v = try number("beta_end") { betaEnd = v }
        for (key, beta) in [("beta_start", betaStart), ("beta_end", betaEnd)] where !(beta > 0 && beta < 1) {
            throw SchedulerConfigError(key: key, message: "\(beta) is not in (0, 1)")
        }
        if let v = try choice("beta_schedule", BetaSchedule.self) { betaSchedule = v }
        if let v = try choice("prediction_type", PredictionType.self) { predictionType = v }
        if let v = try flag("set_alpha_to_one") { setAlphaToOne = v }
        if let v = try number("steps_offset") {
            guard v >= 0, v < Double(numTrainTimesteps), v == v.rounded() else {
                throw SchedulerConfigError(key: "steps_offset", message: "expected an integer in 0..<\(numTrainTimesteps)")
            }
            stepsOffset = Int(v)
        }
        if let v = try choice("timestep_spacing", TimestepSpacing.self) { timestepSpacing = v }
        if let v = try flag("clip_sample") { clipSample = v }
        if let v = try number("clip_sample_range") {
            guard v.isFinite, v > 0 else { throw SchedulerConfigError(key: "clip_sample_range", message: "expected a positive number") }
            clipSampleRange = v
        }
        if let v = object["trained_betas"], v != .null {
            throw SchedulerConfigError(key: "trained_betas", message: "explicit betas are not supported")
        }
        for key in ["thresholding", "rescale_betas_zero_snr"] where try flag(key) == true {
            throw SchedulerConfigError(key: key, message: "only false is supported")
        }
    }
}
