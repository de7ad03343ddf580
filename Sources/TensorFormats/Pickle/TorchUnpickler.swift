/// A pickle reader that runs nothing.
///
/// It interprets the pickle opcodes the way `pickle.Unpickler` does, but a global is only ever a name:
/// one that torch's `weights_only=True` loader does not allow is refused the moment the pickle names
/// it (`pickle-global-refused`, with the module and name it would have imported), and an allowed one is
/// "called" by `TorchUnpickler+Calls.swift`, which builds tensors and plain containers and nothing else.
/// Python is never involved, so a refused pickle cannot have run any of its payload.
///
/// The opcodes are those of protocols 0-5 that build data (torch writes protocol 2); `INST`, `OBJ`,
/// extension registries and out-of-band buffers are refused. Every length and index is checked against
/// the bytes that remain and the stack and memo as they are, so malformed input is an error, never a trap.
public struct TorchUnpickler {
    /// MARKs open at once; torch's own pickles need 3, so this only stops hostile nesting.
    public static let maximumMarkDepth = 1000
    /// Longest text line (protocol 0 arguments, GLOBAL names).
    static let maximumLine = 1 << 16

    public private(set) var heap = PickleHeap()
    /// Storages named by persistent ids, in first-use order.
    public internal(set) var storages: [TorchStorageReference] = []
    /// Tensors built by rebuild functions.
    public internal(set) var tensors: [TorchTensorReference] = []
    /// Persistent ids as the legacy format writes them (with a view tuple) instead of the zip format's.
    let legacyPersistentIDs: Bool

    var storageIndexByKey: [ByteKey: Int] = [:]
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]

    public init(legacyPersistentIDs: Bool = false) {
        self.legacyPersistentIDs = legacyPersistentIDs
    }

    /// Unpickles one pickle starting at `start`; returns the value and the offset after its STOP.
    /// Storages and tensors accumulate across calls (the legacy format is several pickles in a row).
    public mutating func load(_ bytes: UnsafeRawBufferPointer, from start: Int = 0) throws(TensorFormatError) -> (value: PickleValue, end: Int) {
        stack.removeAll()
        marks.removeAll()
        memo.removeAll()
        var reader = PickleReader(bytes: bytes, position: start)
        while true {
            let at = reader.position
            let opcode = try reader.byte()
            do {
                if let result = try step(opcode, &reader) { return (result, reader.position) }
            } catch {
                var located = error
                if !located.message.contains(" at byte ") { located.message += " (opcode 0x\(hex(opcode)) at byte \(at))" }
                throw located
            }
        }
    }

    // MARK: Opcodes

    /// Runs one opcode; returns the result at STOP.
    private mutating func step(_ opcode: UInt8, _ reader: inout PickleReader) throws(TensorFormatError) -> PickleValue? {
        switch opcode {
        case 0x80: // PROTO
            let proto = try reader.byte()
            guard proto <= 5 else { throw invalid("unknown pickle protocol \(proto)") }
        case 0x95: // FRAME: a length hint only
            _ = try reader.unsigned(8)
        case 0x2E: // STOP
            let result = try pop()
            return result

        // Globals and calls: the only opcodes that could run code in Python.
        case 0x63: // GLOBAL "module\nname\n"
            let module = try reader.line(), name = try reader.line()
            stack.append(try resolveGlobal(module: module, name: name))
        case 0x93: // STACK_GLOBAL
            let name = try pop(), module = try pop()
            guard case .string(let m) = module, case .string(let n) = name else { throw invalid("STACK_GLOBAL needs two strings") }
            stack.append(try resolveGlobal(module: m, name: n))
        case 0x69: // INST "module\nname\n": calls the class with the marked arguments
            let module = try reader.line(), name = try reader.line()
            _ = try resolveGlobal(module: module, name: name)
            throw TensorFormatError(.pickleUnsupportedOpcode, "INST (a protocol 0 class call) is refused, as torch's weights_only loader refuses it")
        case 0x52: // REDUCE
            let arguments = try pop()
            let callable = try pop()
            stack.append(try call(callable, arguments))
        case 0x81: // NEWOBJ
            let arguments = try pop()
            let cls = try pop()
            stack.append(try newObject(cls, arguments))
        case 0x92: // NEWOBJ_EX
            _ = try pop()
            let arguments = try pop()
            let cls = try pop()
            stack.append(try newObject(cls, arguments))
        case 0x62: // BUILD
            let state = try pop()
            try build(try top(), state: state)
        case 0x51: // BINPERSID
            let pid = try pop()
            stack.append(try persistentLoad(pid))
        case 0x50: // PERSID (text id): torch never writes it
            throw TensorFormatError(.pickleUnsupportedOpcode, "PERSID (a text persistent id) is not a torch storage")
        case 0x6F, 0x82, 0x83, 0x84, 0x97, 0x98: // OBJ, EXT1, EXT2, EXT4, NEXT_BUFFER, READONLY_BUFFER
            throw TensorFormatError(.pickleUnsupportedOpcode, "opcode 0x\(hex(opcode)) (\(PickleReader.name(opcode))) is refused: it calls code or reads out-of-band data")

        // Constants.
        case 0x4E: stack.append(.none) // NONE
        case 0x88: stack.append(.bool(true)) // NEWTRUE
        case 0x89: stack.append(.bool(false)) // NEWFALSE
        case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try reader.unsigned(4))))) // BININT
        case 0x4B: stack.append(.int(Int(try reader.unsigned(1)))) // BININT1
        case 0x4D: stack.append(.int(Int(try reader.unsigned(2)))) // BININT2
        case 0x8A: stack.append(try reader.long(lengthBytes: 1)) // LONG1
        case 0x8B: stack.append(try reader.long(lengthBytes: 4)) // LONG4
        case 0x47: stack.append(.float(Double(bitPattern: try reader.bigEndian64()))) // BINFLOAT
        case 0x49: stack.append(try reader.textInt()) // INT
        case 0x4C: stack.append(try reader.textInt()) // LONG
        case 0x46: // FLOAT
            let text = try reader.line()
            guard let value = Double(text) else { throw invalid("FLOAT argument is not a number") }
            stack.append(.float(value))
        case 0x58: stack.append(.string(try reader.utf8(lengthBytes: 4))) // BINUNICODE
        case 0x8C: stack.append(.string(try reader.utf8(lengthBytes: 1))) // SHORT_BINUNICODE
        case 0x8D: stack.append(.string(try reader.utf8(lengthBytes: 8))) // BINUNICODE8
        case 0x56: stack.append(.string(try reader.line())) // UNICODE (raw-unicode-escape, kept as written)
        case 0x53: // STRING: a quoted repr, kept without its quotes
            var text = try reader.line()
            if text.count >= 2, let first = text.first, first == "'" || first == "\"", text.last == first { text = String(text.dropFirst().dropLast()) }
            stack.append(.string(text))
        case 0x54: stack.append(.bytes(try reader.counted(lengthBytes: 4))) // BINSTRING
        case 0x55: stack.append(.bytes(try reader.counted(lengthBytes: 1))) // SHORT_BINSTRING
        case 0x42: stack.append(.bytes(try reader.counted(lengthBytes: 4))) // BINBYTES
        case 0x43: stack.append(.bytes(try reader.counted(lengthBytes: 1))) // SHORT_BINBYTES
        case 0x8E: stack.append(.bytes(try reader.counted(lengthBytes: 8))) // BINBYTES8
        case 0x96: stack.append(.bytes(try reader.counted(lengthBytes: 8))) // BYTEARRAY8

        // Containers.
        case 0x5D: stack.append(heap.add(.list([]))) // EMPTY_LIST
        case 0x7D: stack.append(heap.add(.dict(PickleDict()))) // EMPTY_DICT
        case 0x29: stack.append(heap.add(.tuple([]))) // EMPTY_TUPLE
        case 0x8F: stack.append(heap.add(.set([]))) // EMPTY_SET
        case 0x28: // MARK
            guard marks.count < Self.maximumMarkDepth else {
                throw TensorFormatError(.pickleTooDeep, "more than \(Self.maximumMarkDepth) nested MARKs")
            }
            marks.append(stack.count)
        case 0x74: stack.append(heap.add(.tuple(try popMark()))) // TUPLE
        case 0x85, 0x86, 0x87: // TUPLE1, TUPLE2, TUPLE3
            let count = Int(opcode - 0x84)
            guard stack.count - count >= (marks.last ?? 0) else { throw underflow() }
            let items = Array(stack.suffix(count))
            stack.removeLast(count)
            stack.append(heap.add(.tuple(items)))
        case 0x6C: stack.append(heap.add(.list(try popMark()))) // LIST
        case 0x64: // DICT
            let items = try popMark()
            stack.append(heap.add(.dict(try pairs(items))))
        case 0x91: stack.append(heap.add(.set(try popMark()))) // FROZENSET
        case 0x61: // APPEND
            let item = try pop()
            try extendList(try top(), with: [item], opcode: "APPEND")
        case 0x65: // APPENDS
            let items = try popMark()
            try extendList(try top(), with: items, opcode: "APPENDS")
        case 0x90: // ADDITEMS
            let items = try popMark()
            guard case .object(let index) = try top(), case .set(var set) = heap[index] else { throw invalid("ADDITEMS needs a set") }
            set += items
            heap[index] = .set(set)
        case 0x73: // SETITEM
            let value = try pop(), key = try pop()
            try setItems(try top(), PickleDict(pairs: [(key, value)]), opcode: "SETITEM")
        case 0x75: // SETITEMS
            let items = try popMark()
            try setItems(try top(), try pairs(items), opcode: "SETITEMS")

        // Stack and memo.
        case 0x30: _ = try pop() // POP
        case 0x31: _ = try popMark() // POP_MARK
        case 0x32: stack.append(try top()) // DUP
        case 0x71: memo[Int(try reader.unsigned(1))] = try top() // BINPUT
        case 0x72: memo[Int(try reader.unsigned(4))] = try top() // LONG_BINPUT
        case 0x70: memo[try reader.textIndex()] = try top() // PUT
        case 0x94: memo[memo.count] = try top() // MEMOIZE
        case 0x68: stack.append(try memoValue(Int(try reader.unsigned(1)))) // BINGET
        case 0x6A: stack.append(try memoValue(Int(try reader.unsigned(4)))) // LONG_BINGET
        case 0x67: stack.append(try memoValue(try reader.textIndex())) // GET
        default:
            throw TensorFormatError(.pickleUnsupportedOpcode, "unknown or refused pickle opcode 0x\(hex(opcode)) (\(PickleReader.name(opcode)))")
        }
        return nil
    }

    // MARK: Stack helpers

    private mutating func pop() throws(TensorFormatError) -> PickleValue {
        guard stack.count > (marks.last ?? 0) else { throw underflow() }
        return stack.removeLast()
    }

    private func top() throws(TensorFormatError) -> PickleValue {
        guard stack.count > (marks.last ?? 0), let last = stack.last else { throw underflow() }
        return last
    }

    private mutating func popMark() throws(TensorFormatError) -> [PickleValue] {
        guard let mark = marks.popLast() else { throw invalid("no MARK to pop to") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    private func memoValue(_ index: Int) throws(TensorFormatError) -> PickleValue {
        guard let value = memo[index] else { throw invalid("memo index \(index) was never stored") }
        return value
    }

    private func underflow() -> TensorFormatError { invalid("stack underflow") }

    func invalid(_ message: String) -> TensorFormatError { TensorFormatError(.pickleInvalid, message) }

    private func pairs(_ items: [PickleValue]) throws(TensorFormatError) -> PickleDict {
        guard items.count % 2 == 0 else { throw invalid("odd number of items for a dict") }
        var dict = PickleDict()
        for i in stride(from: 0, to: items.count, by: 2) { dict.set(items[i], items[i + 1]) }
        return dict
    }

    private mutating func extendList(_ target: PickleValue, with items: [PickleValue], opcode: String) throws(TensorFormatError) {
        guard case .object(let index) = target, case .list(var list) = heap[index] else {
            throw invalid("\(opcode) needs a list, found \(target.shortDescription)")
        }
        heap[index] = .list([])
        list += items
        heap[index] = .list(list)
    }

    private mutating func setItems(_ target: PickleValue, _ items: PickleDict, opcode: String) throws(TensorFormatError) {
        guard case .object(let index) = target, case .dict(var dict) = heap[index] else {
            throw invalid("\(opcode) needs a dict, found \(target.shortDescription)")
        }
        heap[index] = .list([])
        for (key, value) in zip(items.keys, items.values) { dict.set(key, value) }
        heap[index] = .dict(dict)
    }

    mutating func addObject(_ object: PickleObject) -> PickleValue { heap.add(object) }
}

extension PickleDict {
    init(pairs: [(PickleValue, PickleValue)]) {
        self.init()
        for (key, value) in pairs { set(key, value) }
    }
}

func hex(_ byte: UInt8) -> String {
    let text = String(byte, radix: 16)
    return text.count == 1 ? "0" + text : text
}

extension ErrorCode {
    // PyTorch pickles (formats/pickle.md lists each)
    public static let pickleGlobalRefused = ErrorCode(rawValue: "pickle-global-refused")
    public static let pickleUnsupportedOpcode = ErrorCode(rawValue: "pickle-unsupported-opcode")
    public static let pickleInvalid = ErrorCode(rawValue: "pickle-invalid")
    public static let pickleTooDeep = ErrorCode(rawValue: "pickle-too-deep")
    public static let pickleUnsupported = ErrorCode(rawValue: "pickle-unsupported")
    public static let pickleNoTensors = ErrorCode(rawValue: "pickle-no-tensors")
    public static let torchInvalid = ErrorCode(rawValue: "torch-invalid")
    public static let zipInvalid = ErrorCode(rawValue: "zip-invalid")
    public static let zipCompressed = ErrorCode(rawValue: "zip-compressed")
}
