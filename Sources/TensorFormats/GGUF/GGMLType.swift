/// A ggml tensor type as GGUF numbers it (ggml.h `enum ggml_type`, gguf-py `GGMLQuantizationType`).
///
/// Only the types dmsurgery reads or writes have a case (Q4_K and Q6_K are read only: gguf-py has no
/// quantizer for them to be bit-exact to); other numbers ggml defines are recognised by
/// `knownUnsupported` so that a file using them gets a precise error rather than "unknown type".
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q5_0 = 6
    case q5_1 = 7
    case q8_0 = 8
    case q4_k = 12
    case q6_k = 14
    case i8 = 24
    case i16 = 25
    case i32 = 26
    case i64 = 27
    case f64 = 28
    case bf16 = 30

    /// Elements per block (1 for plain types).
    public var blockSize: Int {
        switch self {
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0: return 32
        case .q4_k, .q6_k: return 256
        default: return 1
        }
    }

    /// Bytes per block (gguf-py `GGML_QUANT_SIZES`).
    public var typeSize: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8: return 1
        case .i64, .f64: return 8
        case .q4_0: return 18
        case .q4_1: return 20
        case .q5_0: return 22
        case .q5_1: return 24
        case .q8_0: return 34
        case .q4_k: return 144
        case .q6_k: return 210
        }
    }

    public var isQuantized: Bool { blockSize > 1 }

    /// The case name ("q4_0"), as `--quant` takes it. Spelled out: `String(describing:)` reaches it by
    /// reflection, whose protocol-conformance scans of this large binary cost every command's start-up
    /// (the parser builds `convert`'s help, which lists these names, before parsing any command).
    public var caseName: String {
        switch self {
        case .f32: return "f32"
        case .f16: return "f16"
        case .q4_0: return "q4_0"
        case .q4_1: return "q4_1"
        case .q5_0: return "q5_0"
        case .q5_1: return "q5_1"
        case .q8_0: return "q8_0"
        case .q4_k: return "q4_k"
        case .q6_k: return "q6_k"
        case .i8: return "i8"
        case .i16: return "i16"
        case .i32: return "i32"
        case .i64: return "i64"
        case .f64: return "f64"
        case .bf16: return "bf16"
        }
    }

    /// The dtype a tensor of this type reads as: its own for plain types, F32 for quantized blocks.
    public var readDType: DType {
        switch self {
        case .f32, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_k, .q6_k: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .f64: return .f64
        case .i8: return .i8
        case .i16: return .i16
        case .i32: return .i32
        case .i64: return .i64
        }
    }

    /// The plain ggml type holding a dtype unchanged, if there is one (GGUF has no unsigned types).
    public init?(plain dtype: DType) {
        switch dtype {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        case .f64: self = .f64
        case .i8: self = .i8
        case .i16: self = .i16
        case .i32: self = .i32
        case .i64: self = .i64
        default: return nil
        }
    }

    /// The upper-case name ggml prints (`Q8_0`).
    public var name: String { caseName.uppercased() }

    /// The lower-case name users type (`--quant q8_0`).
    public init?(userName: String) {
        guard let match = GGMLType.allCases.first(where: { $0.caseName == userName.lowercased() }) else { return nil }
        self = match
    }

    /// Types `convert --quant` accepts.
    public static let writable: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1]

    /// Bytes of `elements` values, or nil when the count is not a whole number of blocks or overflows.
    public func byteCount(elements: Int) -> Int? {
        guard elements >= 0, elements % blockSize == 0 else { return nil }
        let (bytes, overflow) = (elements / blockSize).multipliedReportingOverflow(by: typeSize)
        return overflow ? nil : bytes
    }

    /// `general.file_type` for a file whose bulk is this type (gguf-py `LlamaFileType`).
    public var fileType: UInt32 {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 7
        case .q5_0: return 8
        case .q5_1: return 9
        case .bf16: return 32
        case .q4_k: return 15
        case .q6_k: return 18
        case .i8, .i16, .i32, .i64, .f64: return 0
        }
    }

    /// ggml type numbers that exist but that dmsurgery does not decode (other K-quants, I-quants, ternary, FP4).
    public static func knownUnsupported(_ raw: UInt32) -> String? {
        let names: [UInt32: String] = [
            9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 13: "Q5_K", 15: "Q8_K", 16: "IQ2_XXS",
            17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
            29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4", 40: "NVFP4", 41: "Q1_0",
        ]
        return names[raw]
    }
}
