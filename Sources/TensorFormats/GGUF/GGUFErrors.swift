extension ErrorCode {
    // GGUF structure (formats/gguf.md lists each rule)
    public static let ggufMagic = ErrorCode(rawValue: "gguf-magic")
    public static let ggufVersion = ErrorCode(rawValue: "gguf-version")
    public static let ggufCountPastEOF = ErrorCode(rawValue: "gguf-count-past-eof")
    public static let ggufInvalidString = ErrorCode(rawValue: "gguf-invalid-string")
    public static let ggufValueType = ErrorCode(rawValue: "gguf-value-type")
    public static let ggufNestedArray = ErrorCode(rawValue: "gguf-nested-array")
    public static let ggufAlignment = ErrorCode(rawValue: "gguf-alignment")
    public static let ggufMisalignedOffset = ErrorCode(rawValue: "gguf-misaligned-offset")
    public static let ggufOverlap = ErrorCode(rawValue: "gguf-overlapping-tensors")
    public static let ggufOriginalShape = ErrorCode(rawValue: "gguf-original-shape")
}
