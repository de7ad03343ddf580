/// Which tensors of an unpickled object become the checkpoint, and under which names.
///
/// The rule (formats/pickle.md):
/// 1. Wrappers are unwrapped: while the object is a dict none of whose values is a tensor and it has a
///    key `state_dict`, `module`, `model` or `model_state_dict` (the first present, in that order) whose
///    value is a dict, the reader descends into that value. Lightning / LDM `.ckpt` files
///    (`{"state_dict": …, "epoch": …}`), DeepSpeed (`{"module": …}`) and training scripts
///    (`{"model": …, "optimizer": …}`) all reduce to their state dict; the optimizer is left out.
/// 2. At each level unwrapped, a sibling EMA dict (`model_ema`, `state_dict_ema`, `ema`) is kept too,
///    its tensors named `KEY.` + their name (`model_ema.conv.weight`), so EMA weights stay distinct.
/// 3. What remains is flattened: dict keys (strings, or integers in decimal) and list/tuple positions
///    joined by `.` name every tensor reached; other values (ints, strings, None) are skipped and
///    counted. A bare tensor at the root is named `tensor`.
struct TorchStateDict {
    static let wrapperKeys = ["state_dict", "module", "model", "model_state_dict"]
    static let emaKeys = ["model_ema", "state_dict_ema", "ema"]
    static let maximumDepth = 64

    private(set) var tensors: [(name: String, tensor: Int)] = []
    /// What was unwrapped and skipped, for `inspect`.
    private(set) var details: [(String, String)] = []
    private var skipped = 0
    private var visited: Set<Int> = []
    private let heap: PickleHeap

    init(root: PickleValue, heap: PickleHeap) throws(TensorFormatError) {
        self.heap = heap
        var current = root
        var path: [String] = []
        while let dict = heap.dict(current), !dict.values.contains(where: { if case .tensor = $0 { true } else { false } }),
              let key = Self.wrapperKeys.first(where: { dict[$0].flatMap(heap.dict) != nil }) {
            for ema in Self.emaKeys where ema != key {
                if let value = dict[ema], heap.dict(value) != nil { try flatten(value, prefix: ema, depth: 0) }
            }
            let others = dict.keys.compactMap { if case .string(let s) = $0, s != key, !Self.emaKeys.contains(s) { s } else { nil } }
            path.append(key)
            details.append(("pickle unwrapped", path.joined(separator: ".") + (others.isEmpty ? "" : " (left out: \(others.prefix(8).joined(separator: ", "))\(others.count > 8 ? ", …" : ""))")))
            current = dict[key]!
        }
        try flatten(current, prefix: nil, depth: 0)
        if skipped > 0 { details.append(("pickle non-tensor values", String(skipped))) }
        if tensors.isEmpty {
            throw TensorFormatError(.pickleNoTensors, "the pickle holds no tensors (it is a \(describe(root)))")
        }
    }

    private mutating func flatten(_ value: PickleValue, prefix: String?, depth: Int) throws(TensorFormatError) {
        guard depth <= Self.maximumDepth else {
            throw TensorFormatError(.pickleTooDeep, "containers nest deeper than \(Self.maximumDepth) levels", tensor: prefix)
        }
        switch value {
        case .tensor(let index):
            tensors.append((prefix ?? "tensor", index))
        case .object(let index):
            // A container reached twice (shared or recursive) is named once, at its first path.
            guard visited.insert(index).inserted else { return }
            switch heap[index] {
            case .dict(let dict):
                for (key, item) in zip(dict.keys, dict.values) {
                    let part: String
                    switch key {
                    case .string(let s): part = s
                    case .int(let i): part = String(i)
                    default:
                        skipped += 1
                        continue
                    }
                    try flatten(item, prefix: prefix.map { $0 + "." + part } ?? part, depth: depth + 1)
                }
            case .list(let items), .tuple(let items):
                for (i, item) in items.enumerated() {
                    try flatten(item, prefix: prefix.map { $0 + "." + String(i) } ?? String(i), depth: depth + 1)
                }
            case .set:
                skipped += 1
            }
        default:
            skipped += 1
        }
    }

    private func describe(_ value: PickleValue) -> String {
        guard let dict = heap.dict(value) else { return value.shortDescription }
        let keys = dict.keys.prefix(8).map { if case .string(let s) = $0 { s } else { $0.shortDescription } }
        return "dict with keys \(keys.joined(separator: ", "))\(dict.count > 8 ? ", …" : "")"
    }
}
