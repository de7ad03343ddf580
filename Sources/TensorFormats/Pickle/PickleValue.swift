/// A value on the restricted unpickler's stack.
///
/// Flat on purpose: containers live in `PickleHeap` and values refer to them by index, so a hostile
/// pickle that nests a million tuples or makes a list contain itself builds no deep Swift value (no
/// recursive deallocation, no reference cycle); whoever walks the result bounds the depth and keeps a
/// visited set.
public enum PickleValue: Sendable, Equatable {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer that does not fit 64 bits: its little-endian two's-complement bytes (torch's legacy
    /// magic number is one).
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    /// A list, tuple, dict or set in the heap.
    case object(Int)
    /// An allowed global not called (yet): a class, a rebuild function, a dtype, a storage type.
    case global(String)
    /// A storage named by a persistent id, index into `TorchUnpickler.storages`.
    case storage(Int)
    /// A tensor built by a rebuild function, index into `TorchUnpickler.tensors`.
    case tensor(Int)
    /// Something an allowed call built that only matters to Python (a device, a layout, a complex):
    /// its name, never used further.
    case opaque(String)

    var shortDescription: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .object: return "container"
        case .global(let name): return name
        case .storage: return "storage"
        case .tensor: return "tensor"
        case .opaque(let name): return name
        }
    }
}

/// A container the unpickler built.
public enum PickleObject: Sendable {
    case list([PickleValue])
    case tuple([PickleValue])
    case dict(PickleDict)
    case set([PickleValue])
}

/// A dict in insertion order; assigning an existing key replaces its value in place, as Python does.
public struct PickleDict: Sendable {
    public private(set) var keys: [PickleValue] = []
    public private(set) var values: [PickleValue] = []
    private var index: [Key: Int] = [:]

    /// Hashable stand-in for the key kinds that compare by value in Python; containers and tensors
    /// compare by identity there, and each is a distinct key here too. Strings compare by their UTF-8
    /// bytes as Python's `str` does (by code points): Swift's `String ==` would merge `é` and `e` +
    /// U+0301 into one key and drop a tensor.
    private enum Key: Hashable {
        case none, bool(Bool), int(Int), bigInt([UInt8]), float(Double), string(ByteKey), bytes([UInt8]), identity(Int)
    }

    public var count: Int { keys.count }

    mutating func set(_ key: PickleValue, _ value: PickleValue) {
        let hashed: Key
        switch key {
        case .none: hashed = .none
        case .bool(let b): hashed = .int(b ? 1 : 0)
        case .int(let i): hashed = .int(i)
        case .bigInt(let b): hashed = .bigInt(b)
        case .float(let f): hashed = .float(f)
        case .string(let s): hashed = .string(ByteKey(s))
        case .bytes(let b): hashed = .bytes(b)
        default: hashed = .identity(keys.count)
        }
        if let existing = index[hashed] {
            values[existing] = value
        } else {
            index[hashed] = keys.count
            keys.append(key)
            values.append(value)
        }
    }

    public subscript(key: String) -> PickleValue? {
        index[.string(ByteKey(key))].map { values[$0] }
    }
}

/// Every container of one unpickling, addressed by `PickleValue.object`.
public struct PickleHeap: Sendable {
    public private(set) var objects: [PickleObject] = []

    mutating func add(_ object: PickleObject) -> PickleValue {
        objects.append(object)
        return .object(objects.count - 1)
    }

    public subscript(index: Int) -> PickleObject {
        get { objects[index] }
        set { objects[index] = newValue }
    }

    /// The items of a tuple or list value, nil for anything else.
    public func sequence(_ value: PickleValue) -> [PickleValue]? {
        guard case .object(let index) = value else { return nil }
        switch objects[index] {
        case .tuple(let items), .list(let items): return items
        default: return nil
        }
    }

    public func dict(_ value: PickleValue) -> PickleDict? {
        guard case .object(let index) = value, case .dict(let dict) = objects[index] else { return nil }
        return dict
    }
}
