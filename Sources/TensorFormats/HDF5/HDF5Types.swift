import CHDF5

/// Element types between safetensors and HDF5 (formats/hdf5.md, "Types").
///
/// HDF5 1.10 has IEEE half, single and double floats and little/big-endian integers; everything else
/// safetensors knows (bfloat16, the FP8, FP6 and FP4 families) is stored as Keras 3 stores bfloat16:
/// raw bytes plus a `dtype` attribute naming the type the way ml_dtypes (and so Keras) spells it.
/// Byte-sized types are opaque data of their width with the tensor's shape; sub-byte types (F4, F6)
/// are their packed bytes as a 1-D uint8 dataset with a `shape` attribute holding the element shape.
public enum HDF5TypeMapping {
    /// The `dtype` attribute value for types without an HDF5 equivalent.
    public static let attributeNames: [DType: String] = [
        .bf16: "bfloat16",
        .f8e4m3: "float8_e4m3fn", .f8e5m2: "float8_e5m2", .f8e8m0: "float8_e8m0fnu",
        .f8e4m3fnuz: "float8_e4m3fnuz", .f8e5m2fnuz: "float8_e5m2fnuz",
        .f4: "float4_e2m1fn", .f6e2m3: "float6_e2m3fn", .f6e3m2: "float6_e3m2fn",
    ]

    /// The dtype a `dtype` attribute names: the ml_dtypes spelling or the safetensors one.
    public static func dtype(attribute: String) -> DType? {
        if let match = attributeNames.first(where: { $0.value == attribute }) { return match.key }
        guard let dtype = DType(rawValue: attribute), attributeNames[dtype] != nil else { return nil }
        return dtype
    }

    /// Whether a dtype is stored packed (1-D uint8 plus a `shape` attribute).
    static func isPacked(_ dtype: DType) -> Bool { dtype.bitsPerElement < 8 }

    /// What a dataset's HDF5 type reads as.
    enum Classification {
        /// A tensor of `dtype`, read with `memoryType` (little-endian, bits unchanged).
        case tensor(DType, memoryType: HDF5Handle, description: String)
        /// Not numeric data (strings, references, variable-length): skipped, with the reason.
        case notTensor(String)
        /// Numeric but without a safetensors equivalent.
        case unsupported(String)
    }

    /// Classifies a file type; `dtypeAttribute` is the dataset's `dtype` attribute, if any.
    /// Called under the HDF5 lock.
    static func classify(_ type: hid_t, dtypeAttribute: String?, file: String?) throws(TensorFormatError) -> Classification {
        let size = H5Tget_size(type)
        let attributeDType = dtypeAttribute.flatMap { dtype(attribute: $0) }
        switch H5Tget_class(type) {
        case H5T_INTEGER:
            let signed = H5Tget_sign(type) == H5T_SGN_2
            if let packed = attributeDType, isPacked(packed), size == 1, !signed {
                return .tensor(packed, memoryType: try copy(dms_h5t_std_u8le(), file), description: "uint8 (packed \(dtypeAttribute!))")
            }
            let table: [Int: (DType, DType, hid_t, hid_t)] = [
                1: (.i8, .u8, dms_h5t_std_i8le(), dms_h5t_std_u8le()),
                2: (.i16, .u16, dms_h5t_std_i16le(), dms_h5t_std_u16le()),
                4: (.i32, .u32, dms_h5t_std_i32le(), dms_h5t_std_u32le()),
                8: (.i64, .u64, dms_h5t_std_i64le(), dms_h5t_std_u64le()),
            ]
            guard let row = table[size] else { return .unsupported("\(size * 8)-bit integer") }
            let order = H5Tget_order(type) == H5T_ORDER_BE ? "BE" : "LE"
            return signed
                ? .tensor(row.0, memoryType: try copy(row.2, file), description: "int\(size * 8) \(order)")
                : .tensor(row.1, memoryType: try copy(row.3, file), description: "uint\(size * 8) \(order)")
        case H5T_FLOAT:
            var (sign, exponentPosition, exponentSize, mantissaPosition, mantissaSize) = (0, 0, 0, 0, 0)
            guard H5Tget_fields(type, &sign, &exponentPosition, &exponentSize, &mantissaPosition, &mantissaSize) >= 0 else {
                throw HDF5Library.failure(.hdf5Unreadable, "cannot read a float type", file: file)
            }
            let fields = [size, sign, exponentPosition, exponentSize, mantissaPosition, mantissaSize]
            let order = H5Tget_order(type) == H5T_ORDER_BE ? "BE" : "LE"
            switch fields {
            case [4, 31, 23, 8, 0, 23]: return .tensor(.f32, memoryType: try copy(dms_h5t_ieee_f32le(), file), description: "IEEE float32 \(order)")
            case [8, 63, 52, 11, 0, 52]: return .tensor(.f64, memoryType: try copy(dms_h5t_ieee_f64le(), file), description: "IEEE float64 \(order)")
            case [2, 15, 10, 5, 0, 10]: return .tensor(.f16, memoryType: try halfType(file), description: "IEEE float16 \(order)")
            // Native bfloat16 and FP8 floats, as HDF5 2.0 writes them: read as stored, in little-endian order.
            case [2, 15, 7, 8, 0, 7]: return .tensor(.bf16, memoryType: try littleEndianCopy(type, file), description: "bfloat16 \(order)")
            case [1, 7, 3, 4, 0, 3]: return .tensor(.f8e4m3, memoryType: try copy(type, file), description: "float8 e4m3")
            case [1, 7, 2, 5, 0, 2]: return .tensor(.f8e5m2, memoryType: try copy(type, file), description: "float8 e5m2")
            default: return .unsupported("\(size * 8)-bit float with fields \(fields.dropFirst())")
            }
        case H5T_ENUM:
            if try isBoolEnum(type) {
                return .tensor(.bool, memoryType: try copy(type, file), description: "enum bool (h5py)")
            }
            return .unsupported("enum type")
        case H5T_COMPOUND:
            if let complex = try complexMemoryType(type, file: file) {
                return .tensor(.c64, memoryType: complex, description: "compound complex64 (r, i)")
            }
            return .unsupported("compound type")
        case H5T_OPAQUE:
            if let dtype = attributeDType, !isPacked(dtype), dtype.bitsPerElement == size * 8 {
                return .tensor(dtype, memoryType: try copy(type, file), description: "opaque[\(size)] dtype=\(dtypeAttribute!)")
            }
            return .unsupported("\(size)-byte opaque data without a known dtype attribute")
        case H5T_STRING: return .notTensor("strings")
        case H5T_VLEN: return .notTensor("variable-length data")
        case H5T_REFERENCE: return .notTensor("references")
        case H5T_ARRAY: return .unsupported("array type")
        case H5T_BITFIELD: return .unsupported("bitfield type")
        default: return .unsupported("HDF5 type class \(H5Tget_class(type).rawValue)")
        }
    }

    /// The file type dmsurgery writes for `dtype` (an owned copy). Called under the HDF5 lock.
    static func fileType(for dtype: DType, file: String?) throws(TensorFormatError) -> HDF5Handle {
        switch dtype {
        case .bool:
            let type = try HDF5Handle(H5Tenum_create(dms_h5t_std_i8le()), .hdf5Write, "cannot create the bool type", file: file)
            var no: Int8 = 0, yes: Int8 = 1
            guard H5Tenum_insert(type.id, "FALSE", &no) >= 0, H5Tenum_insert(type.id, "TRUE", &yes) >= 0 else {
                throw HDF5Library.failure(.hdf5Write, "cannot create the bool type", file: file)
            }
            return type
        case .u8, .f4, .f6e2m3, .f6e3m2: return try copy(dms_h5t_std_u8le(), file)
        case .i8: return try copy(dms_h5t_std_i8le(), file)
        case .i16: return try copy(dms_h5t_std_i16le(), file)
        case .u16: return try copy(dms_h5t_std_u16le(), file)
        case .i32: return try copy(dms_h5t_std_i32le(), file)
        case .u32: return try copy(dms_h5t_std_u32le(), file)
        case .i64: return try copy(dms_h5t_std_i64le(), file)
        case .u64: return try copy(dms_h5t_std_u64le(), file)
        case .f16: return try halfType(file)
        case .f32: return try copy(dms_h5t_ieee_f32le(), file)
        case .f64: return try copy(dms_h5t_ieee_f64le(), file)
        case .c64:
            let type = try HDF5Handle(H5Tcreate(H5T_COMPOUND, 8), .hdf5Write, "cannot create the complex type", file: file)
            guard H5Tinsert(type.id, "r", 0, dms_h5t_ieee_f32le()) >= 0, H5Tinsert(type.id, "i", 4, dms_h5t_ieee_f32le()) >= 0 else {
                throw HDF5Library.failure(.hdf5Write, "cannot create the complex type", file: file)
            }
            return type
        case .bf16, .f8e5m2, .f8e4m3, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz:
            return try HDF5Handle(H5Tcreate(H5T_OPAQUE, dtype.bitsPerElement / 8), .hdf5Write, "cannot create an opaque type", file: file)
        }
    }

    private static func copy(_ type: hid_t, _ file: String?) throws(TensorFormatError) -> HDF5Handle {
        try HDF5Handle(H5Tcopy(type), .hdf5Unreadable, "cannot copy an HDF5 type", file: file)
    }

    private static func littleEndianCopy(_ type: hid_t, _ file: String?) throws(TensorFormatError) -> HDF5Handle {
        let copied = try copy(type, file)
        guard H5Tset_order(copied.id, H5T_ORDER_LE) >= 0 else { throw HDF5Library.failure(.hdf5Unreadable, "cannot set byte order", file: file) }
        return copied
    }

    /// IEEE binary16, little-endian, built as h5py builds it (HDF5 1.10 predefines no half type).
    private static func halfType(_ file: String?) throws(TensorFormatError) -> HDF5Handle {
        let type = try copy(dms_h5t_ieee_f32le(), file)
        guard H5Tset_fields(type.id, 15, 10, 5, 0, 10) >= 0, H5Tset_size(type.id, 2) >= 0, H5Tset_ebias(type.id, 15) >= 0 else {
            throw HDF5Library.failure(.hdf5Unreadable, "cannot build the float16 type", file: file)
        }
        return type
    }

    /// h5py's bool: a 1-byte enum with exactly FALSE = 0 and TRUE = 1.
    private static func isBoolEnum(_ type: hid_t) throws(TensorFormatError) -> Bool {
        guard H5Tget_size(type) == 1, H5Tget_nmembers(type) == 2 else { return false }
        var names: [String: Int8] = [:]
        for index in 0..<UInt32(2) {
            guard let raw = H5Tget_member_name(type, index) else { return false }
            let name = String(cString: raw)
            H5free_memory(raw)
            var value: Int8 = 0
            guard H5Tget_member_value(type, index, &value) >= 0 else { return false }
            names[name] = value
        }
        return names == ["FALSE": 0, "TRUE": 1]
    }

    /// A little-endian memory type for a compound of two float32 members at offsets 0 and 4 (h5py's
    /// complex64), keeping the file's member names so that HDF5 matches them; nil for other compounds.
    private static func complexMemoryType(_ type: hid_t, file: String?) throws(TensorFormatError) -> HDF5Handle? {
        guard H5Tget_size(type) == 8, H5Tget_nmembers(type) == 2 else { return nil }
        var names: [String] = []
        for index in 0..<UInt32(2) {
            let member = H5Tget_member_type(type, index)
            guard member >= 0 else { return nil }
            defer { H5Tclose(member) }
            guard H5Tget_class(member) == H5T_FLOAT, H5Tget_size(member) == 4,
                  H5Tget_member_offset(type, index) == Int(index) * 4,
                  let raw = H5Tget_member_name(type, index) else { return nil }
            names.append(String(cString: raw))
            H5free_memory(raw)
        }
        let memory = try HDF5Handle(H5Tcreate(H5T_COMPOUND, 8), .hdf5Unreadable, "cannot create the complex type", file: file)
        guard H5Tinsert(memory.id, names[0], 0, dms_h5t_ieee_f32le()) >= 0, H5Tinsert(memory.id, names[1], 4, dms_h5t_ieee_f32le()) >= 0 else {
            throw HDF5Library.failure(.hdf5Unreadable, "cannot create the complex type", file: file)
        }
        return memory
    }
}
