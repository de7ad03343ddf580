/// Why a UNet could not be built or run: the rule broken and where (config key or parameter name).
public struct UNetError: Error, CustomStringConvertible, Sendable, Equatable {
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
    public var message: String

    public init(_ kind: Kind, _ subject: String, _ message: String) {
        self.kind = kind
        self.subject = subject
        self.message = message
    }

    public var description: String { "\(subject): \(message)" }
}
