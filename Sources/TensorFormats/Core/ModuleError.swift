/// A module's tag in `ModuleError<Module>`: an empty enum per module (`FormatErrors`, `TrainingErrors`,
/// ...), so each module's errors are their own type (caught apart, named apart in a debugger) while
/// the shape is written once.
public protocol ErrorModule: Sendable {}

/// The one shape of the errors the modules throw: the rule broken (a stable code), a message for a
/// person, where it happened (file and tensor) and the error underneath, if any. swift-nio's
/// `FileSystemError` is the model: one line for users (`oneLine`), a tree for debugging (`tree`).
/// `TensorFormatError`, `CLIPError`, `TrainingError` and `SurgeryError` are this shape, one tag each.
public struct ModuleError<Module: ErrorModule>: ToolError, Equatable {
    /// The rule that was broken (the shared `ErrorCode`).
    public typealias Code = ErrorCode

    public var code: Code
    public var message: String
    /// The file the problem is in (`-` for standard input); set by the code closest to the fault (`inFile`).
    public var file: String?
    /// The tensor, parameter, token or config key the problem is in, where one applies.
    public var tensor: String?
    /// The error underneath (a system call's, a parser's, another module's), when this one reports it;
    /// what users need of it is in `message`, the whole of it in `tree`.
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, file: String? = nil, tensor: String? = nil, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.file = file
        self.tensor = tensor
        self.cause = cause
    }

    public var description: String { oneLine }

    /// Equal when they say the same thing: code, message, file, tensor and the cause's description.
    public static func == (a: Self, b: Self) -> Bool {
        a.code == b.code && a.message == b.message && a.file == b.file && a.tensor == b.tensor
            && a.cause.map { String(describing: $0) } == b.cause.map { String(describing: $0) }
    }
}
