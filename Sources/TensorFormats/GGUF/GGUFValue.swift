/// The type tag of a GGUF key/value (gguf-py `GGUFValueType`).
public enum GGUFValueType: UInt32, Sendable {
    case u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, bool = 7, string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12

    /// Bytes of one value; nil for strings and arrays, whose size is in the data.
    public var fixedSize: Int? {
        switch self {
        case .u8, .i8, .bool: return 1
        case .u16, .i16: return 2
        case .u32, .i32, .f32: return 4
        case .u64, .i64, .f64: return 8
        case .string, .array: return nil
        }
    }

    public var name: String { String(describing: self).uppercased() }
}

/// One GGUF value. Arrays keep their element type, count and where their bytes are, not the elements:
/// a vocabulary of a million strings then costs nothing until someone asks for it.
public enum GGUFValue: Sendable, Equatable {
    case integer(GGUFValueType, Int64)
    case unsigned64(UInt64)
    case float(GGUFValueType, Double)
    case bool(Bool)
    case string(String)
    case array(element: GGUFValueType, count: Int, bytes: Range<Int>)

    public var type: GGUFValueType {
        switch self {
        case .integer(let t, _), .float(let t, _): return t
        case .unsigned64: return .u64
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        }
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// A value as `inspect` prints it; arrays as their type and count.
    public var text: String {
        switch self {
        case .integer(_, let v): return String(v)
        case .unsigned64(let v): return String(v)
        case .float(_, let v): return String(v)
        case .bool(let v): return String(v)
        case .string(let s): return s
        case .array(let element, let count, _): return "[\(element.name) × \(count)]"
        }
    }
}
