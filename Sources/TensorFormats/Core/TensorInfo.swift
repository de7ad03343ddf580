/// One tensor as a checkpoint header describes it.
public struct TensorInfo: Sendable, Hashable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    /// Byte range relative to the start of the data buffer (safetensors' `data_offsets`).
    public var dataOffsets: Range<Int>

    public init(name: String, dtype: DType, shape: [Int], dataOffsets: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataOffsets = dataOffsets
    }

    public var byteCount: Int { dataOffsets.count }

    /// Product of the dims (0 when any dim is 0, whatever the others: `[2^62, 2^62, 0]` holds nothing);
    /// the readers' validation guarantees a non-zero product does not overflow.
    public var elementCount: Int { MemoryBudget.product(shape) ?? Int.max }
}

/// Ordered string-to-string metadata (`__metadata__`).
///
/// Order is kept as read: the reference writer emits its map in hash order, so only keeping the order
/// lets a rewrite reproduce a file byte for byte. Keys added by dmsurgery are appended.
public struct Metadata: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var key: String
        public var value: String
    }

    public private(set) var entries: [Entry]

    public init(_ entries: [(String, String)] = []) {
        self.entries = entries.map { Entry(key: $0.0, value: $0.1) }
    }

    public var isEmpty: Bool { entries.isEmpty }
    public var keys: [String] { entries.map(\.key) }

    /// Keys compare byte for byte (`ByteKey`): two keys equal only after Unicode normalisation are two keys.
    public subscript(key: String) -> String? {
        get { entries.first(where: { $0.key.utf8.elementsEqual(key.utf8) })?.value }
        set {
            if let index = entries.firstIndex(where: { $0.key.utf8.elementsEqual(key.utf8) }) {
                if let newValue { entries[index].value = newValue } else { entries.remove(at: index) }
            } else if let newValue {
                entries.append(Entry(key: key, value: newValue))
            }
        }
    }

    /// Adds the keys of `other` that are not present yet, in their order.
    public mutating func merge(_ other: Metadata) {
        for entry in other.entries where self[entry.key] == nil { entries.append(entry) }
    }

    public var json: JSONValue { .object(entries.map { JSONMember($0.key, .string($0.value)) }) }
}

/// Metadata keys dmsurgery reads and writes (formats/metadata.md).
public enum MetadataKey {
    /// The diffusers `config.json` text, carried inside single-file checkpoints and streams.
    public static let config = "dmsurgery.config"
}
