import TensorFormats

/// A training run that cannot start or continue: Training's own error type, printed by the CLI like any
/// other `ToolError` (formats/training.md lists the codes).
public struct TrainingError: ToolError, Equatable {
    public var code: ErrorCode
    public var message: String
    public var file: String?
    public var tensor: String?

    public init(_ code: ErrorCode, _ message: String, file: String? = nil, tensor: String? = nil) {
        self.code = code
        self.message = message
        self.file = file
        self.tensor = tensor
    }

    public var description: String { oneLine }
}

extension ErrorCode {
    /// `--resume` with a state written by a run with another description (options, scheduler, inputs).
    public static let runMismatch = ErrorCode(rawValue: "run-mismatch")
}
