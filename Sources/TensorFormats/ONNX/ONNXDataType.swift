/// An ONNX tensor element type, numbered as `onnx.proto`'s `TensorProto.DataType` numbers it.
///
/// Kept apart from the generated protobuf enum so the quantization codecs and the reader's results can
/// name a type without exposing SwiftProtobuf in TensorFormats' public API.
public enum ONNXDataType: Int32, Sendable, Hashable, CaseIterable {
    case float = 1
    case uint8 = 2
    case int8 = 3
    case uint16 = 4
    case int16 = 5
    case int32 = 6
    case int64 = 7
    case string = 8
    case bool = 9
    case float16 = 10
    case double = 11
    case uint32 = 12
    case uint64 = 13
    case complex64 = 14
    case complex128 = 15
    case bfloat16 = 16
    case float8e4m3fn = 17
    case float8e4m3fnuz = 18
    case float8e5m2 = 19
    case float8e5m2fnuz = 20
    case uint4 = 21
    case int4 = 22
    case float4e2m1 = 23
    case float8e8m0 = 24
    case uint2 = 25
    case int2 = 26
    case float6e2m3 = 27
    case float6e3m2 = 28

    /// The name `onnx.proto` gives the type (`FLOAT`, `UINT4`), for reports.
    public var name: String {
        switch self {
        case .float: return "FLOAT"
        case .uint8: return "UINT8"
        case .int8: return "INT8"
        case .uint16: return "UINT16"
        case .int16: return "INT16"
        case .int32: return "INT32"
        case .int64: return "INT64"
        case .string: return "STRING"
        case .bool: return "BOOL"
        case .float16: return "FLOAT16"
        case .double: return "DOUBLE"
        case .uint32: return "UINT32"
        case .uint64: return "UINT64"
        case .complex64: return "COMPLEX64"
        case .complex128: return "COMPLEX128"
        case .bfloat16: return "BFLOAT16"
        case .float8e4m3fn: return "FLOAT8E4M3FN"
        case .float8e4m3fnuz: return "FLOAT8E4M3FNUZ"
        case .float8e5m2: return "FLOAT8E5M2"
        case .float8e5m2fnuz: return "FLOAT8E5M2FNUZ"
        case .uint4: return "UINT4"
        case .int4: return "INT4"
        case .float4e2m1: return "FLOAT4E2M1"
        case .float8e8m0: return "FLOAT8E8M0"
        case .uint2: return "UINT2"
        case .int2: return "INT2"
        case .float6e2m3: return "FLOAT6E2M3"
        case .float6e3m2: return "FLOAT6E3M2"
        }
    }

    /// Bits per element in `raw_data` (sub-byte types are packed two or more to a byte, low bits first);
    /// nil for STRING, which has no fixed width.
    public var bitsPerElement: Int? {
        switch self {
        case .uint2, .int2: return 2
        case .uint4, .int4, .float4e2m1: return 4
        case .float6e2m3, .float6e3m2: return 6
        case .uint8, .int8, .bool, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0: return 8
        case .uint16, .int16, .float16, .bfloat16: return 16
        case .float, .int32, .uint32: return 32
        case .int64, .uint64, .double, .complex64: return 64
        case .complex128: return 128
        case .string: return nil
        }
    }

    /// Bytes `count` elements take in `raw_data` (sub-byte types rounded up to whole bytes), nil on
    /// overflow or for STRING.
    public func byteCount(elements count: Int) -> Int? {
        guard let bits = bitsPerElement, count >= 0 else { return nil }
        let (product, overflow) = count.multipliedReportingOverflow(by: bits)
        guard !overflow else { return nil }
        return product / 8 + (product % 8 == 0 ? 0 : 1)
    }

    /// The element type dmsurgery's tensors use for the same values, where one exists (2- and 4-bit
    /// integers have none: they are read only through a dequantizing node; ONNX's 6-bit floats are
    /// left out because their packing is not safetensors').
    public var dtype: DType? {
        switch self {
        case .float: return .f32
        case .uint8: return .u8
        case .int8: return .i8
        case .uint16: return .u16
        case .int16: return .i16
        case .int32: return .i32
        case .int64: return .i64
        case .bool: return .bool
        case .float16: return .f16
        case .double: return .f64
        case .uint32: return .u32
        case .uint64: return .u64
        case .complex64: return .c64
        case .bfloat16: return .bf16
        case .float8e4m3fn: return .f8e4m3
        case .float8e5m2: return .f8e5m2
        case .float8e4m3fnuz: return .f8e4m3fnuz
        case .float8e5m2fnuz: return .f8e5m2fnuz
        case .float4e2m1: return .f4
        case .float8e8m0: return .f8e8m0
        case .string, .complex128, .uint4, .int4, .uint2, .int2, .float6e2m3, .float6e3m2: return nil
        }
    }
}
