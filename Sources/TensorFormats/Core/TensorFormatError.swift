/// A failure to read, validate or write a checkpoint.
///
/// Shaped after swift-nio's `FileSystemError`: a stable code that scripts and tests can match on, a
/// human message, and where it happened (file and tensor), printed as one line for users.
public struct TensorFormatError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The rule that was broken. Raw values are the names printed and documented in formats/.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        // safetensors structure (formats/safetensors.md lists each with the reference's behaviour)
        public static let tooSmall = Code(rawValue: "too-small")
        public static let headerTooLarge = Code(rawValue: "header-too-large")
        public static let headerPastEOF = Code(rawValue: "header-past-eof")
        public static let headerNotUTF8 = Code(rawValue: "header-not-utf8")
        public static let headerInvalidJSON = Code(rawValue: "header-invalid-json")
        public static let headerNotObject = Code(rawValue: "header-not-object")
        public static let duplicateKey = Code(rawValue: "duplicate-key")
        public static let unknownDType = Code(rawValue: "unknown-dtype")
        public static let invalidShape = Code(rawValue: "invalid-shape")
        public static let invalidOffsets = Code(rawValue: "invalid-offsets")
        public static let missingField = Code(rawValue: "missing-field")
        public static let invalidMetadata = Code(rawValue: "invalid-metadata")
        public static let offsetsNotContiguous = Code(rawValue: "offsets-not-contiguous")
        public static let sizeOverflow = Code(rawValue: "size-overflow")
        public static let misalignedBits = Code(rawValue: "misaligned-bits")
        public static let sizeMismatch = Code(rawValue: "size-mismatch")
        public static let trailingBytes = Code(rawValue: "trailing-bytes")
        public static let truncated = Code(rawValue: "truncated")
        // checkpoints made of several files
        public static let invalidIndex = Code(rawValue: "invalid-index")
        public static let invalidConfig = Code(rawValue: "invalid-config")
        public static let unknownFormat = Code(rawValue: "unknown-format")
        // operations
        public static let io = Code(rawValue: "io-error")
        public static let notFound = Code(rawValue: "not-found")
        public static let sameFile = Code(rawValue: "output-is-input")
        public static let terminalOutput = Code(rawValue: "binary-to-terminal")
        public static let nameCollision = Code(rawValue: "name-collision")
        public static let unsupported = Code(rawValue: "unsupported")
        public static let interrupted = Code(rawValue: "interrupted")
        public static let invalidArgument = Code(rawValue: "invalid-argument")
    }

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

    /// `FILE: RULE: message (tensor 'NAME')`: one line, stable enough to grep.
    public var description: String {
        var line = ""
        if let file { line += "\(file): " }
        line += "\(code.rawValue): \(message)"
        if let tensor { line += " (tensor '\(tensor)')" }
        return line
    }
}
