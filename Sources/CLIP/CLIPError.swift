import TensorFormats

/// Why a tokenizer, text encoder or VAE could not be loaded or run: the CLIP module's `ModuleError`
/// (the config key, parameter or token concerned is its `tensor`); the codes are listed in
/// formats/tokenizer.md and formats/text-encoder.md.
public typealias CLIPError = ModuleError<CLIPErrors>

/// The tag of the CLIP module's errors.
public enum CLIPErrors: ErrorModule {}

extension ErrorCode {
    // Tokenizer folders and vocabularies (formats/tokenizer.md)
    public static let tokenizerMissingFile = ErrorCode(rawValue: "tokenizer-missing-file")
    public static let tokenizerInvalidJSON = ErrorCode(rawValue: "tokenizer-invalid-json")
    public static let tokenizerBadVocab = ErrorCode(rawValue: "tokenizer-bad-vocab")
    public static let tokenizerBadMerges = ErrorCode(rawValue: "tokenizer-bad-merges")
    public static let tokenizerBadConfig = ErrorCode(rawValue: "tokenizer-bad-config")
    public static let tokenizerUnsupported = ErrorCode(rawValue: "tokenizer-unsupported")
    public static let tokenizerBadGzip = ErrorCode(rawValue: "tokenizer-bad-gzip")
    public static let tokenizerNotUTF8 = ErrorCode(rawValue: "tokenizer-not-utf8")

    // Text encoder and VAE configs, weights and inputs (formats/text-encoder.md, formats/vae.md)
    public static let modelBadConfig = ErrorCode(rawValue: "model-bad-config")
    public static let modelUnsupported = ErrorCode(rawValue: "model-unsupported")
    public static let modelMissingParameter = ErrorCode(rawValue: "model-missing-parameter")
    public static let modelBadShape = ErrorCode(rawValue: "model-bad-shape")
    public static let modelUnexpectedParameter = ErrorCode(rawValue: "model-unexpected-parameter")
    public static let modelBadInput = ErrorCode(rawValue: "model-bad-input")
}
