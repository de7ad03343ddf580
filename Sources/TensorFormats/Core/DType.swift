/// An element type, spelled as safetensors spells it.
///
/// The declaration order is the reference implementation's enum order: its writer sorts tensors by
/// this order (descending), so reproducing its bytes depends on it.
public enum DType: String, CaseIterable, Sendable, Hashable, Codable {
    case bool = "BOOL"
    case f4 = "F4"
    case f6e2m3 = "F6_E2M3"
    case f6e3m2 = "F6_E3M2"
    case u8 = "U8"
    case i8 = "I8"
    case f8e5m2 = "F8_E5M2"
    case f8e4m3 = "F8_E4M3"
    case f8e8m0 = "F8_E8M0"
    case f8e4m3fnuz = "F8_E4M3FNUZ"
    case f8e5m2fnuz = "F8_E5M2FNUZ"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case c64 = "C64"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// Position in the reference enum; the writer orders tensors by it.
    public var referenceOrder: Int { DType.allCases.firstIndex(of: self)! }

    /// Bits per element. Sub-byte types (F4, F6) are packed, so a tensor's byte size is bits × count / 8.
    public var bitsPerElement: Int {
        switch self {
        case .f4: return 4
        case .f6e2m3, .f6e3m2: return 6
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz: return 8
        case .i16, .u16, .f16, .bf16: return 16
        case .i32, .u32, .f32: return 32
        case .c64, .f64, .i64, .u64: return 64
        }
    }

    /// Real floating-point types: the ones NaN/Inf scans and `--dtype` casts apply to.
    public var isFloatingPoint: Bool {
        switch self {
        case .f4, .f6e2m3, .f6e3m2, .f8e5m2, .f8e4m3, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz, .f16, .bf16, .f32, .f64:
            return true
        default:
            return false
        }
    }

    public var isComplex: Bool { self == .c64 }

    public var isInteger: Bool {
        switch self {
        case .u8, .i8, .i16, .u16, .i32, .u32, .i64, .u64: return true
        default: return false
        }
    }

    /// Smallest run of bytes that holds a whole number of elements (3 bytes = 4 F6 values).
    /// Chunked processing cuts buffers at multiples of this.
    public var elementGroupBytes: Int {
        switch self {
        case .f4: return 1
        case .f6e2m3, .f6e3m2: return 3
        default: return bitsPerElement / 8
        }
    }

    /// Elements held by `elementGroupBytes` bytes.
    public var elementsPerGroup: Int { elementGroupBytes * 8 / bitsPerElement }

    /// The lower-case names users type (`--dtype bf16`), mapped to the safetensors spelling.
    public init?(userName: String) {
        let key = userName.lowercased()
        if let match = DType.allCases.first(where: { $0.rawValue.lowercased() == key }) {
            self = match
            return
        }
        switch key {
        case "float16", "half": self = .f16
        case "bfloat16": self = .bf16
        case "float32", "float": self = .f32
        case "float64", "double": self = .f64
        default: return nil
        }
    }

    /// Byte count of `elements` values, or nil when it overflows or is not a whole number of bytes.
    public func byteCount(elements: Int) -> Int? {
        let (bits, overflow) = elements.multipliedReportingOverflow(by: bitsPerElement)
        guard !overflow, bits % 8 == 0 else { return nil }
        return bits / 8
    }
}
