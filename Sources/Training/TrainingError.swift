import TensorFormats

/// A training run that cannot start or continue: Training's `ModuleError`, printed by the CLI like any
/// other `ToolError` (formats/training.md lists the codes).
public typealias TrainingError = ModuleError<TrainingErrors>

/// The tag of the Training module's errors.
public enum TrainingErrors: ErrorModule {}

extension ErrorCode {
    /// `--resume` with a state written by a run with another description (options, scheduler, inputs).
    public static let runMismatch = ErrorCode(rawValue: "run-mismatch")
}
