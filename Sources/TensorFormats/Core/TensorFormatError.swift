/// A failure to read, validate or write a checkpoint: the formats module's `ModuleError`.
public typealias TensorFormatError = ModuleError<FormatErrors>

/// The tag of TensorFormats' errors.
public enum FormatErrors: ErrorModule {}

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
