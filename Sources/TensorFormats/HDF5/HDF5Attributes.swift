import CHDF5

/// Reading and writing the attributes dmsurgery uses: strings, string lists and integer lists.
/// Every function is called under the HDF5 lock.
enum HDF5Attributes {
    /// Attribute names of an object, in creation order when tracked, else in name order.
    static func names(_ object: hid_t) -> [String] {
        var info = H5O_info_t()
        guard H5Oget_info2(object, &info, UInt32(H5O_INFO_NUM_ATTRS)) >= 0 else { return [] }
        let index = tracksAttributeOrder(object) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME
        var result: [String] = []
        for n in 0..<info.num_attrs {
            let length = H5Aget_name_by_idx(object, ".", index, H5_ITER_INC, n, nil, 0, dms_h5p_default())
            guard length >= 0 else { continue }
            var buffer = [CChar](repeating: 0, count: Int(length) + 1)
            guard H5Aget_name_by_idx(object, ".", index, H5_ITER_INC, n, &buffer, buffer.count, dms_h5p_default()) >= 0 else { continue }
            result.append(string(buffer))
        }
        return result
    }

    private static func tracksAttributeOrder(_ object: hid_t) -> Bool {
        let plist = creationPlist(object)
        guard plist >= 0 else { return false }
        defer { H5Pclose(plist) }
        var flags: UInt32 = 0
        guard H5Pget_attr_creation_order(plist, &flags) >= 0 else { return false }
        return flags & UInt32(H5P_CRT_ORDER_INDEXED) != 0
    }

    private static func creationPlist(_ object: hid_t) -> hid_t {
        switch H5Iget_type(object) {
        case H5I_GROUP: return H5Gget_create_plist(object)
        case H5I_DATASET: return H5Dget_create_plist(object)
        case H5I_FILE: return H5Fget_create_plist(object)
        default: return -1
        }
    }

    static func exists(_ object: hid_t, _ name: String) -> Bool { H5Aexists(object, name) > 0 }

    /// A string attribute (scalar or one-element, variable or fixed length); nil if absent or not a string.
    static func string(_ object: hid_t, _ name: String) -> String? {
        guard let values = strings(object, name), values.count == 1 else { return nil }
        return values[0]
    }

    /// A string list attribute (Keras' `layer_names`, `weight_names`); an empty non-string array
    /// (Keras 3 writes `np.array([])` for layers without weights) reads as []; nil if absent.
    static func strings(_ object: hid_t, _ name: String) -> [String]? {
        withAttribute(object, name) { attribute, type, space in
            let count = Int(max(H5Sget_simple_extent_npoints(space), 0))
            guard H5Tget_class(type) == H5T_STRING else { return count == 0 ? [] : nil }
            if count == 0 { return [] }
            if H5Tis_variable_str(type) > 0 {
                let memory = H5Tcopy(dms_h5t_c_s1())
                defer { H5Tclose(memory) }
                H5Tset_size(memory, dms_h5t_variable())
                H5Tset_cset(memory, H5Tget_cset(type))
                var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
                guard H5Aread(attribute, memory, &pointers) >= 0 else { _ = HDF5Library.takeErrorMessage(); return nil }
                defer { for pointer in pointers where pointer != nil { H5free_memory(pointer) } }
                return pointers.map { $0.map { String(cString: $0) } ?? "" }
            }
            let size = H5Tget_size(type)
            guard size > 0 else { return nil }
            let memory = H5Tcopy(type)
            defer { H5Tclose(memory) }
            var bytes = [UInt8](repeating: 0, count: size * count)
            guard H5Aread(attribute, memory, &bytes) >= 0 else { _ = HDF5Library.takeErrorMessage(); return nil }
            let spacePadded = H5Tget_strpad(type) == H5T_STR_SPACEPAD
            return (0..<count).map { index in
                var slice = bytes[index * size..<(index + 1) * size]
                if let end = slice.firstIndex(of: 0) { slice = slice[..<end] }
                if spacePadded { while slice.last == 0x20 { slice = slice.dropLast() } }
                return String(decoding: slice, as: UTF8.self)
            }
        }
    }

    /// An integer list attribute (the element shape of packed F4/F6 datasets); nil if absent or not integers.
    static func integers(_ object: hid_t, _ name: String) -> [Int64]? {
        withAttribute(object, name) { attribute, type, space in
            guard H5Tget_class(type) == H5T_INTEGER else { return nil }
            let count = Int(max(H5Sget_simple_extent_npoints(space), 0))
            var values = [Int64](repeating: 0, count: count)
            if count > 0 {
                guard H5Aread(attribute, dms_h5t_native_int64(), &values) >= 0 else { _ = HDF5Library.takeErrorMessage(); return nil }
            }
            return values
        }
    }

    /// Opens attribute `name` and hands `body` its handle, stored type and dataspace; nil when it is absent
    /// or cannot be opened. Every handle is closed afterwards.
    private static func withAttribute<T>(_ object: hid_t, _ name: String, _ body: (hid_t, hid_t, hid_t) -> T?) -> T? {
        guard exists(object, name) else { return nil }
        let attribute = H5Aopen(object, name, dms_h5p_default())
        guard attribute >= 0 else { _ = HDF5Library.takeErrorMessage(); return nil }
        defer { H5Aclose(attribute) }
        let type = H5Aget_type(attribute), space = H5Aget_space(attribute)
        defer { H5Tclose(type); H5Sclose(space) }
        return body(attribute, type, space)
    }

    /// Writes a scalar variable-length UTF-8 string attribute, as h5py writes `str` values.
    static func write(_ object: hid_t, _ name: String, string value: String, file: String?) throws(TensorFormatError) {
        let type = try HDF5Handle(H5Tcopy(dms_h5t_c_s1()), .hdf5Write, "cannot create a string type", file: file)
        H5Tset_size(type.id, dms_h5t_variable())
        H5Tset_cset(type.id, H5T_CSET_UTF8)
        let space = try HDF5Handle(H5Screate(H5S_SCALAR), .hdf5Write, "cannot create a dataspace", file: file)
        let attribute = try HDF5Handle(H5Acreate2(object, name, type.id, space.id, dms_h5p_default(), dms_h5p_default()),
                                       .hdf5Write, "cannot create attribute '\(name)'", file: file)
        let status = value.withCString { pointer -> herr_t in
            var pointers: [UnsafePointer<CChar>?] = [pointer]
            return H5Awrite(attribute.id, type.id, &pointers)
        }
        guard status >= 0 else { throw HDF5Library.failure(.hdf5Write, "cannot write attribute '\(name)'", file: file) }
    }

    /// Writes a 1-D uint8 attribute (a metadata value holding NUL, as UTF-8 bytes).
    static func write(_ object: hid_t, _ name: String, bytes values: [UInt8], file: String?) throws(TensorFormatError) {
        var dims = [hsize_t(values.count)]
        let space = try HDF5Handle(H5Screate_simple(1, &dims, nil), .hdf5Write, "cannot create a dataspace", file: file)
        let attribute = try HDF5Handle(H5Acreate2(object, name, dms_h5t_std_u8le(), space.id, dms_h5p_default(), dms_h5p_default()),
                                       .hdf5Write, "cannot create attribute '\(name)'", file: file)
        guard values.withUnsafeBufferPointer({ H5Awrite(attribute.id, dms_h5t_native_uint8(), $0.baseAddress) }) >= 0 else {
            throw HDF5Library.failure(.hdf5Write, "cannot write attribute '\(name)'", file: file)
        }
    }

    /// A 1-D uint8 attribute as UTF-8 text (how the dmsurgery layout keeps metadata values holding NUL).
    static func utf8Bytes(_ object: hid_t, _ name: String) -> String? {
        withAttribute(object, name) { attribute, type, space in
            guard H5Tget_class(type) == H5T_INTEGER, H5Tget_size(type) == 1, H5Tget_sign(type) == H5T_SGN_NONE,
                  H5Sget_simple_extent_ndims(space) == 1 else { return nil }
            var bytes = [UInt8](repeating: 0, count: Int(max(H5Sget_simple_extent_npoints(space), 0)))
            if !bytes.isEmpty {
                guard H5Aread(attribute, dms_h5t_native_uint8(), &bytes) >= 0 else { _ = HDF5Library.takeErrorMessage(); return nil }
            }
            return String(validating: bytes, as: UTF8.self)
        }
    }

    /// Writes a 1-D int64 attribute.
    static func write(_ object: hid_t, _ name: String, integers values: [Int64], file: String?) throws(TensorFormatError) {
        var dims = [hsize_t(values.count)]
        let space = try HDF5Handle(H5Screate_simple(1, &dims, nil), .hdf5Write, "cannot create a dataspace", file: file)
        let attribute = try HDF5Handle(H5Acreate2(object, name, dms_h5t_std_i64le(), space.id, dms_h5p_default(), dms_h5p_default()),
                                       .hdf5Write, "cannot create attribute '\(name)'", file: file)
        guard values.withUnsafeBufferPointer({ H5Awrite(attribute.id, dms_h5t_native_int64(), $0.baseAddress) }) >= 0 else {
            throw HDF5Library.failure(.hdf5Write, "cannot write attribute '\(name)'", file: file)
        }
    }

    static func string(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
