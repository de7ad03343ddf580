/// A storage a persistent id names: which record holds its bytes and how they are read.
public struct TorchStorageReference: Sendable, Equatable {
    /// The record key: `data/KEY` in the zip format, the root key in the legacy format.
    public var key: String
    public var dtype: DType
    /// Elements of the whole record, as the persistent id declares them.
    public var recordElements: Int
    /// A legacy storage view: where it starts in its record, in bytes.
    public var viewByteOffset: Int
    /// Bytes visible through this storage.
    public var byteCount: Int
}

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view of a storage.
public struct TorchTensorReference: Sendable, Equatable {
    public var storage: Int
    public var dtype: DType
    public var shape: [Int]
    /// In elements, one per dimension (torch never saves negative strides).
    public var strides: [Int]
    /// First element's index in the storage.
    public var storageOffset: Int
}

/// What the allowed globals do: only ever build tensors, containers or inert names.
extension TorchUnpickler {
    mutating func resolveGlobal(module rawModule: String, name: String) throws(TensorFormatError) -> PickleValue {
        let full = printable(PythonNameMapping.resolve(module: rawModule, name: name))
        guard TorchGlobals.isAllowed(full) else {
            throw TensorFormatError(.pickleGlobalRefused, "the pickle would call \(full), which torch's weights_only loader does not allow; nothing was run")
        }
        return .global(full)
    }

    mutating func call(_ callable: PickleValue, _ arguments: PickleValue) throws(TensorFormatError) -> PickleValue {
        guard case .global(let name) = callable else { throw invalid("REDUCE on \(callable.shortDescription), not an allowed global") }
        guard let args = heap.sequence(arguments) else { throw invalid("REDUCE arguments are not a tuple") }
        switch name {
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
            guard args.count >= 4 else { throw invalid("\(name) needs storage, offset, size and stride") }
            return try rebuildTensor(args[0], offset: args[1], size: args[2], stride: args[3], dtype: nil)
        case "torch._utils._rebuild_tensor_v3":
            guard args.count >= 7 else { throw invalid("\(name) needs storage, offset, size, stride, requires_grad, hooks and dtype") }
            return try rebuildTensor(args[0], offset: args[1], size: args[2], stride: args[3], dtype: args[6])
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard let data = args.first, case .tensor = data else { throw invalid("\(name) needs a tensor") }
            return data
        case "torch._utils._rebuild_device_tensor_from_cpu_tensor":
            guard args.count >= 2, case .tensor(let index) = args[0] else { throw invalid("\(name) needs a tensor") }
            guard try dtype(args[1], for: name) == tensors[index].dtype else {
                throw TensorFormatError(.pickleUnsupported, "\(name) casts the tensor; dmsurgery does not cast on load")
            }
            return args[0]
        case "torch._tensor._rebuild_from_type_v2":
            guard args.count >= 3, case .global(let inner) = args[0], inner != name, case .global(let type) = args[1] else {
                throw invalid("\(name) needs a rebuild function, a type and arguments")
            }
            guard type == "torch.Tensor" || type == "torch.nn.parameter.Parameter" else {
                throw TensorFormatError(.pickleUnsupported, "\(name) builds a \(type), a tensor subclass dmsurgery does not read")
            }
            return try call(args[0], args[2])
        case "collections.OrderedDict", "collections.Counter":
            var dict = PickleDict()
            if let source = args.first {
                guard let items = heap.sequence(source) else { throw invalid("\(name) argument is not a list of pairs") }
                for item in items {
                    guard let pair = heap.sequence(item), pair.count == 2 else { throw invalid("\(name) item is not a pair") }
                    dict.set(pair[0], pair[1])
                }
            }
            return addObject(.dict(dict))
        case "torch.Size":
            guard let source = args.first, let items = heap.sequence(source) else { throw invalid("torch.Size needs a tuple") }
            return addObject(.tuple(items))
        case "_codecs.encode":
            // Protocol 2 writes bytes as encode(text, 'latin1'): every code point is one byte.
            guard let first = args.first, case .string(let text) = first else { throw invalid("_codecs.encode needs a string") }
            var bytes: [UInt8] = []
            for scalar in text.unicodeScalars {
                guard scalar.value < 256 else { throw invalid("_codecs.encode: code point \(scalar.value) is not latin-1") }
                bytes.append(UInt8(scalar.value))
            }
            return .bytes(bytes)
        case "builtins.set":
            return addObject(.set(args.first.flatMap { heap.sequence($0) } ?? []))
        case "builtins.bytearray":
            if let first = args.first, case .bytes = first { return first }
            return .bytes([])
        case "builtins.complex", "torch.device", "torch.serialization._get_layout":
            return .opaque(name)
        default:
            throw TensorFormatError(.pickleUnsupported, "\(name) is allowed by torch's weights_only loader but dmsurgery does not read what it builds")
        }
    }

    mutating func newObject(_ cls: PickleValue, _ arguments: PickleValue) throws(TensorFormatError) -> PickleValue {
        guard case .global(let name) = cls else { throw invalid("NEWOBJ on \(cls.shortDescription), not an allowed class") }
        let args = heap.sequence(arguments) ?? []
        switch name {
        case "torch.nn.parameter.Parameter":
            guard let data = args.first, case .tensor = data else { throw invalid("Parameter needs a tensor") }
            return data
        case "collections.OrderedDict", "collections.Counter":
            return addObject(.dict(PickleDict()))
        case "builtins.set":
            return addObject(.set([]))
        default:
            throw TensorFormatError(.pickleUnsupported, "creating a \(name) object is allowed by torch but dmsurgery does not read it")
        }
    }

    /// BUILD sets Python attributes (an OrderedDict's `_metadata`, a parameter's state): nothing that
    /// changes values, so the state is dropped after checking the target is something torch builds.
    mutating func build(_ target: PickleValue, state: PickleValue) throws(TensorFormatError) {
        switch target {
        case .tensor, .opaque: return
        case .object(let index):
            if case .dict = heap[index] { return }
            throw invalid("BUILD on a list, tuple or set")
        default:
            throw invalid("BUILD on \(target.shortDescription)")
        }
    }

    /// `('storage', storage_type, key, location, numel)`, and in the legacy format a sixth item, the view
    /// `(view_key, offset, size)` or None. The same key always yields the same storage.
    mutating func persistentLoad(_ pid: PickleValue) throws(TensorFormatError) -> PickleValue {
        guard let items = heap.sequence(pid), let kind = items.first else {
            throw invalid("persistent id is not a tuple")
        }
        guard case .string(let tag) = decodedASCII(kind), tag == "storage" else {
            throw TensorFormatError(.pickleUnsupported, "persistent id is not a storage (\(decodedASCII(kind).shortDescription)); torch's weights_only loader refuses it too")
        }
        guard items.count == (legacyPersistentIDs ? 6 : 5) else { throw invalid("storage persistent id has \(items.count) items") }
        guard case .global(let type) = items[1] else { throw invalid("storage type is not a storage class") }
        let dtype: DType
        if type == "torch.storage.UntypedStorage" {
            dtype = .u8
        } else {
            guard let stem = TorchGlobals.storageClass(type), let known = TorchGlobals.storageDTypes[stem] else {
                throw invalid("storage type \(type) is not a storage class")
            }
            guard let supported = known else {
                throw TensorFormatError(.pickleUnsupported, "\(type) has no safetensors dtype")
            }
            dtype = supported
        }
        guard case .string(let key) = decodedASCII(items[2]) else { throw invalid("storage key is not a string") }
        guard case .int(let numel) = items[4], numel >= 0, let bytes = dtype.byteCount(elements: numel) else {
            throw invalid("storage size is not a non-negative element count")
        }
        var reference = TorchStorageReference(key: key, dtype: dtype, recordElements: numel, viewByteOffset: 0, byteCount: bytes)
        var identity = key
        if legacyPersistentIDs, items[5] != .none {
            guard let view = heap.sequence(items[5]), view.count == 3, case .string(let viewKey) = decodedASCII(view[0]),
                  case .int(let offset) = view[1], case .int(let size) = view[2], offset >= 0, size >= 0,
                  offset <= numel, size <= numel - offset else {
                throw TensorFormatError(.torchInvalid, "storage view lies outside storage \(key) (\(numel) elements)")
            }
            reference.viewByteOffset = offset * (dtype.bitsPerElement / 8)
            reference.byteCount = size * (dtype.bitsPerElement / 8)
            identity = viewKey
        }
        if let existing = storageIndexByKey[ByteKey(identity)] {
            guard storages[existing].dtype == dtype, storages[existing].recordElements == numel, ByteKey(storages[existing].key) == ByteKey(key) else {
                throw TensorFormatError(.torchInvalid, "storage \(identity) is declared twice with different types or sizes")
            }
            return .storage(existing)
        }
        storages.append(reference)
        storageIndexByKey[ByteKey(identity)] = storages.count - 1
        return .storage(storages.count - 1)
    }

    private func decodedASCII(_ value: PickleValue) -> PickleValue {
        if case .bytes(let bytes) = value { return .string(String(decoding: bytes, as: UTF8.self)) }
        return value
    }

    private func dtype(_ value: PickleValue, for function: String) throws(TensorFormatError) -> DType {
        guard case .global(let name) = value, name.hasPrefix("torch."), let known = TorchGlobals.dtypes[String(name.dropFirst(6))] else {
            throw invalid("\(function) needs a torch dtype")
        }
        guard let dtype = known else { throw TensorFormatError(.pickleUnsupported, "\(name) has no safetensors dtype") }
        return dtype
    }

    /// Checks a view against its storage: every element it reaches must lie inside.
    private mutating func rebuildTensor(_ storage: PickleValue, offset: PickleValue, size: PickleValue, stride: PickleValue,
                                        dtype explicit: PickleValue?) throws(TensorFormatError) -> PickleValue {
        guard case .storage(let index) = storage else { throw invalid("tensor storage is \(storage.shortDescription), not a storage") }
        guard case .int(let start) = offset, start >= 0 else { throw invalid("storage offset is not a non-negative integer") }
        guard let sizes = heap.sequence(size), let strides = heap.sequence(stride), sizes.count == strides.count else {
            throw invalid("size and stride are not tuples of one length")
        }
        guard sizes.count <= 64 else { throw TensorFormatError(.torchInvalid, "tensor has \(sizes.count) dimensions") }
        var shape: [Int] = [], steps: [Int] = []
        for (s, t) in zip(sizes, strides) {
            guard case .int(let dim) = s, case .int(let step) = t, dim >= 0, step >= 0 else {
                throw TensorFormatError(.torchInvalid, "size and stride must be non-negative integers")
            }
            shape.append(dim)
            steps.append(step)
        }
        let reference = storages[index]
        let dtype = try explicit.map { (v) throws(TensorFormatError) in try self.dtype(v, for: "_rebuild_tensor_v3") } ?? reference.dtype
        let elementBytes = dtype.bitsPerElement / 8
        var elements = 1
        var last = start
        for (dim, step) in zip(shape, steps) {
            let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw TensorFormatError(.sizeOverflow, "element count of shape \(shape) overflows") }
            elements = product
            if dim > 0 {
                let (reach, o1) = (dim - 1).multipliedReportingOverflow(by: step)
                let (sum, o2) = last.addingReportingOverflow(reach)
                guard !o1, !o2 else { throw TensorFormatError(.sizeOverflow, "strides \(steps) overflow") }
                last = sum
            }
        }
        guard elementBytes > 0, let declared = dtype.byteCount(elements: elements) else { throw TensorFormatError(.sizeOverflow, "tensor byte size overflows") }
        // A view with stride 0 repeats one stored element: HDF5's bomb rule, so 635 bytes cannot
        // declare terabytes that every reader would then allocate or loop over.
        if MemoryBudget.isBomb(declared: declared, stored: reference.byteCount) {
            throw TensorFormatError(.pickleDeclaredSize, "view (size \(shape), stride \(steps)) declares \(declared) bytes over a storage of \(reference.byteCount): refusing a possible shape bomb")
        }
        let capacity = reference.byteCount / elementBytes
        if elements > 0, last >= capacity {
            throw TensorFormatError(.torchInvalid, "view (offset \(start), size \(shape), stride \(steps)) reaches element \(last) of a storage of \(capacity)")
        }
        tensors.append(TorchTensorReference(storage: index, dtype: dtype, shape: shape, strides: steps, storageOffset: start))
        return .tensor(tensors.count - 1)
    }
}

/// `text` with control characters escaped, so a name from a file prints as one line.
func printable(_ text: String) -> String {
    var out = ""
    for scalar in text.unicodeScalars.prefix(200) {
        if scalar.value < 0x20 || scalar.value == 0x7F { out += "\\x" + hex(UInt8(scalar.value)) } else { out.unicodeScalars.append(scalar) }
    }
    return out
}

extension ErrorCode {
    /// A pickle view declaring far more bytes than its storage holds (formats/pickle.md).
    public static let pickleDeclaredSize = ErrorCode(rawValue: "pickle-declared-size")
}
