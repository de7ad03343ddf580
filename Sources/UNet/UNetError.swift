import TensorFormats

/// A config or checkpoint the engine cannot build a model from, or inputs that do not fit it.
public struct UNetError: ToolError, Equatable {
    public enum Kind: Sendable, Equatable {
        /// config.json has a key whose value this engine does not implement.
        case unsupportedConfig
        /// config.json is malformed (wrong type, missing required key, inconsistent lengths).
        case invalidConfig
        /// A parameter the architecture needs is absent from the weights.
        case missingParameter
        /// A parameter's shape contradicts the config or its neighbours.
        case badShape
        /// A weight the architecture does not use (a typo or another architecture's checkpoint).
        case unexpectedParameter
        /// Inputs do not fit the model (channels, batch, context width).
        case badInput
    }
    public var kind: Kind
    /// The config key, parameter name or input name concerned.
    public var subject: String
    /// What is wrong with the subject.
    public var reason: String
    /// The checkpoint or config file, once a caller that knows it has set it (`inFile`, the one rule).
    public var file: String?

    public init(_ kind: Kind, _ subject: String, _ reason: String) {
        self.kind = kind
        self.subject = subject
        self.reason = reason
    }

    public var code: ErrorCode {
        switch kind {
        case .unsupportedConfig: .unsupportedConfig
        case .invalidConfig: .invalidConfig
        case .missingParameter: .missingParameter
        case .badShape: .badShape
        case .unexpectedParameter: .unexpectedParameter
        case .badInput: .badInput
        }
    }

    /// Parameters and inputs are named as the tensor; config keys stay in the message.
    public var tensor: String? {
        switch kind {
        case .unsupportedConfig, .invalidConfig: nil
        default: subject
        }
    }

    public var message: String { tensor == nil ? "\(subject): \(reason)" : reason }

    public var description: String { "\(subject): \(reason)" }
}

extension ErrorCode {
    // the engine (formats/engine-io.md)
    public static let unsupportedConfig = ErrorCode(rawValue: "unsupported-config")
    public static let missingParameter = ErrorCode(rawValue: "missing-parameter")
    public static let badShape = ErrorCode(rawValue: "bad-shape")
    public static let unexpectedParameter = ErrorCode(rawValue: "unexpected-parameter")
    public static let badInput = ErrorCode(rawValue: "bad-input")
}
