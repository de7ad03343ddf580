/// The globals torch 2.13's `weights_only=True` loader allows (`torch/_weights_only_unpickler.py`,
/// `_get_allowed_globals` and `_tensor_rebuild_functions`), spelled as the pickle names them after
/// Python 2 names are mapped (`PythonNameMapping`, as `_read_global_instruction` does).
/// A name outside this set is refused before anything else happens; formats/pickle.md lists what each
/// allowed one builds here.
enum TorchGlobals {
    /// Legacy storage classes and the dtype of their elements (nil: torch allows it, safetensors has no
    /// type for it).
    static let storageDTypes: [String: DType?] = [
        "DoubleStorage": .f64, "FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8,
        "ByteStorage": .u8, "BoolStorage": .bool, "ComplexFloatStorage": .c64, "ComplexDoubleStorage": nil,
        "QInt8Storage": nil, "QInt32Storage": nil, "QUInt8Storage": nil, "QUInt4x2Storage": nil, "QUInt2x4Storage": nil,
    ]

    /// `torch.<dtype>` globals (arguments of `_rebuild_tensor_v3`) and their safetensors type.
    static let dtypes: [String: DType?] = {
        var map: [String: DType?] = [
            "float64": .f64, "float32": .f32, "float16": .f16, "bfloat16": .bf16, "int64": .i64, "int32": .i32,
            "int16": .i16, "int8": .i8, "uint8": .u8, "bool": .bool, "complex64": .c64, "uint16": .u16,
            "uint32": .u32, "uint64": .u64, "float8_e4m3fn": .f8e4m3, "float8_e5m2": .f8e5m2,
            "float8_e4m3fnuz": .f8e4m3fnuz, "float8_e5m2fnuz": .f8e5m2fnuz, "float8_e8m0fnu": .f8e8m0,
        ]
        for name in ["complex128", "complex32", "qint8", "qint32", "quint8", "quint4x2", "quint2x4", "bits4x2", "bits8",
                     "bits16", "bits1x8", "bits2x4", "float4_e2m1fn_x2"] { map[name] = .some(nil) }
        for bits in 1...7 { map["uint\(bits)"] = .some(nil); map["int\(bits)"] = .some(nil) }
        return map
    }()

    static let tensorClassStems = ["Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool",
                                   "ComplexFloat", "ComplexDouble"]

    static let rebuildFunctions: Set<String> = [
        "_rebuild_parameter", "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_tensor",
        "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_sparse_tensor", "_rebuild_meta_tensor_no_storage",
        "_rebuild_nested_tensor", "_rebuild_wrapper_subclass", "_rebuild_device_tensor_from_numpy",
        "_rebuild_device_tensor_from_cpu_tensor",
    ]

    static let others: Set<String> = [
        "collections.OrderedDict", "collections.Counter", "torch.nn.parameter.Parameter", "torch.serialization._get_layout",
        "torch.Size", "torch.Tensor", "torch.device", "_codecs.encode", "builtins.bytearray", "builtins.set",
        "builtins.complex", "torch._tensor._rebuild_from_type_v2", "torch.storage.UntypedStorage", "torch.storage.TypedStorage",
        "torch.per_tensor_affine", "torch.per_tensor_symmetric", "torch.per_channel_affine", "torch.per_channel_symmetric",
        "torch.per_channel_affine_float_qparams",
    ]

    static func isAllowed(_ full: String) -> Bool {
        if others.contains(full) { return true }
        if full.hasPrefix("torch._utils."), rebuildFunctions.contains(String(full.dropFirst("torch._utils.".count))) { return true }
        if let storage = storageClass(full), storageDTypes[storage] != nil { return true }
        if full.hasPrefix("torch."), dtypes[String(full.dropFirst(6))] != nil { return true }
        for prefix in ["torch.", "torch.cuda.", "torch.sparse.", "torch.cuda.sparse."] where full.hasPrefix(prefix) {
            let rest = full.dropFirst(prefix.count)
            if rest.hasSuffix("Tensor"), tensorClassStems.contains(String(rest.dropLast(6))) { return true }
        }
        return false
    }

    /// `FloatStorage` for `torch.FloatStorage` or `torch.cuda.FloatStorage`.
    static func storageClass(_ full: String) -> String? {
        for prefix in ["torch.cuda.", "torch."] where full.hasPrefix(prefix) {
            let rest = String(full.dropFirst(prefix.count))
            if rest.hasSuffix("Storage"), !rest.contains(".") { return rest }
        }
        return nil
    }
}
