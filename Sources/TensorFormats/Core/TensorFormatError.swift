/// A failure to read, validate or write a checkpoint.
///
/// Shaped after swift-nio's `FileSystemError`: a stable code that scripts and tests can match on, a
/// human message, and where it happened (file and tensor), printed as one line for users.
public struct TensorFormatError: ToolError, Equatable {
    /// The rule that was broken (the shared `ErrorCode`).
    public typealias Code = ErrorCode

    public var code: Code
    public var message: String
    /// The file the problem is in (`-` for standard input).
    public var file: String?
    /// The tensor the problem is in, where one applies.
    public var tensor: String?

    public init(_ code: Code, _ message: String, file: String? = nil, tensor: String? = nil) {
        self.code = code
        self.message = message
        self.file = file
        self.tensor = tensor
    }

    /// The same error, attributed to `file` unless it already names one.
    public func inFile(_ file: String) -> TensorFormatError {
        var copy = self
        if copy.file == nil { copy.file = file }
        return copy
    }

    public var description: String { oneLine }
}

extension ErrorCode {
    // safetensors structure (formats/safetensors.md lists each with the reference's behaviour)
    public static let tooSmall = ErrorCode(rawValue: "too-small")
    public static let headerTooLarge = ErrorCode(rawValue: "header-too-large")
    public static let headerPastEOF = ErrorCode(rawValue: "header-past-eof")
    public static let headerNotUTF8 = ErrorCode(rawValue: "header-not-utf8")
    public static let headerInvalidJSON = ErrorCode(rawValue: "header-invalid-json")
    public static let headerNotObject = ErrorCode(rawValue: "header-not-object")
    public static let duplicateKey = ErrorCode(rawValue: "duplicate-key")
    public static let unknownDType = ErrorCode(rawValue: "unknown-dtype")
    public static let invalidShape = ErrorCode(rawValue: "invalid-shape")
    public static let invalidOffsets = ErrorCode(rawValue: "invalid-offsets")
    public static let missingField = ErrorCode(rawValue: "missing-field")
    public static let invalidMetadata = ErrorCode(rawValue: "invalid-metadata")
    public static let offsetsNotContiguous = ErrorCode(rawValue: "offsets-not-contiguous")
    public static let sizeOverflow = ErrorCode(rawValue: "size-overflow")
    public static let misalignedBits = ErrorCode(rawValue: "misaligned-bits")
    public static let sizeMismatch = ErrorCode(rawValue: "size-mismatch")
    public static let trailingBytes = ErrorCode(rawValue: "trailing-bytes")
    public static let truncated = ErrorCode(rawValue: "truncated")
    // checkpoints made of several files
    public static let invalidIndex = ErrorCode(rawValue: "invalid-index")
    public static let invalidConfig = ErrorCode(rawValue: "invalid-config")
    public static let unknownFormat = ErrorCode(rawValue: "unknown-format")
    // operations
    public static let io = ErrorCode(rawValue: "io-error")
    public static let notFound = ErrorCode(rawValue: "not-found")
    public static let sameFile = ErrorCode(rawValue: "output-is-input")
    public static let terminalOutput = ErrorCode(rawValue: "binary-to-terminal")
    public static let nameCollision = ErrorCode(rawValue: "name-collision")
    public static let unsupported = ErrorCode(rawValue: "unsupported")
    public static let interrupted = ErrorCode(rawValue: "interrupted")
    public static let invalidArgument = ErrorCode(rawValue: "invalid-argument")
}
