/// PyTorch files (`torch.save`: `.ckpt`, `.pt`, `.pth`, `.bin`) as `Checkpoint`s, read without Python.
///
/// Two containers (formats/pickle.md):
/// - zip (torch >= 1.6): `NAME/data.pkl` is the pickle, storage `KEY` is the stored record
///   `NAME/data/KEY`, `NAME/byteorder` says `little` or `big` (absent: little, as torch assumes).
/// - legacy (`_use_new_zipfile_serialization=False`): five pickles in a row (magic number, protocol
///   version 1001, sys info, the object, the storage keys), then each storage in key order as an
///   int64 little-endian element count and its bytes, always little-endian (torch's writer converts).
/// The object pickle goes through `TorchUnpickler`; `TorchStateDict` picks the tensors; each tensor's
/// bytes are read where they lie in the mapped file (`TorchTensorProvider`).
extension Checkpoint {
    /// torch's legacy magic number 0x1950a86a20f9469cfc6c as LONG1 writes it.
    static let torchLegacyMagic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    static func openTorch(_ map: MappedFile, name: String, zip: Bool) throws(TensorFormatError) -> Checkpoint {
        let parsed: TorchFile
        do { parsed = try TorchFile(map.bytes, zip: zip) } catch { throw error.inFile(name) }
        let file = CheckpointFile(path: name, size: map.size, header: SafetensorsHeader(tensors: parsed.entries.map(\.info), metadata: nil, headerLength: 0))
        return try Checkpoint(name: name, format: .pytorch, files: [file], entries: parsed.entries, metadata: nil, configJSON: nil,
                              details: parsed.details, provider: TorchTensorProvider(map: map, layouts: parsed.layouts))
    }
}

/// A torch file's tensors, parsed from its bytes: names, types, shapes and where each view lies.
public struct TorchFile {
    public private(set) var entries: [TensorEntry] = []
    public private(set) var details: [(String, String)] = []
    var layouts: [ByteKey: TorchTensorLayout] = [:]

    public init(_ bytes: UnsafeRawBufferPointer, zip: Bool) throws(TensorFormatError) {
        var unpickler: TorchUnpickler
        var root: PickleValue
        var storageStarts: [ByteKey: Int] = [:]
        var swap = false
        if zip {
            let directory = try ZipDirectory(bytes)
            guard let pickle = directory.entries.first(where: { $0.name.hasSuffix("/data.pkl") && $0.name.split(separator: "/", omittingEmptySubsequences: false).count == 2 }) else {
                throw TensorFormatError(.wrongFormat, "a zip archive without ARCHIVE/data.pkl, not a torch.save file (\(directory.entries.count) entries)")
            }
            let archive = String(pickle.name.dropLast("data.pkl".count))
            if let order = directory.entry(named: archive + "byteorder") {
                let text = String(decoding: bytes[try directory.storedRange(of: order, bytes)], as: UTF8.self)
                guard text == "little" || text == "big" else { throw TensorFormatError(.torchInvalid, "byteorder record says '\(printable(String(text.prefix(20))))'") }
                swap = text == "big"
            }
            unpickler = TorchUnpickler()
            root = try unpickler.load(UnsafeRawBufferPointer(rebasing: bytes[try directory.storedRange(of: pickle, bytes)])).value
            for storage in unpickler.storages where storageStarts[ByteKey(storage.key)] == nil {
                guard let record = directory.entry(named: archive + "data/" + storage.key) else {
                    throw TensorFormatError(.torchInvalid, "storage \(printable(storage.key)) has no record \(printable(archive))data/\(printable(storage.key))")
                }
                let range = try directory.storedRange(of: record, bytes)
                guard range.count >= storage.byteCount else {
                    throw TensorFormatError(.torchInvalid, "record \(printable(record.name)) holds \(range.count) bytes, storage \(printable(storage.key)) declares \(storage.byteCount)")
                }
                storageStarts[ByteKey(storage.key)] = range.lowerBound
            }
            details = [("pytorch container", "zip (archive '\(printable(archive))', \(directory.entries.count) records)"),
                       ("pytorch byte order", swap ? "big-endian" : "little-endian")]
        } else {
            (unpickler, root, storageStarts, details) = try Self.legacy(bytes)
        }
        let selection = try TorchStateDict(root: root, heap: unpickler.heap)
        var offset = 0
        var strided = 0
        var storageUse: [Int: Int] = [:]
        for (tensorName, index) in selection.tensors {
            let tensor = unpickler.tensors[index]
            let storage = unpickler.storages[tensor.storage]
            let layout = TorchTensorLayout(storageStart: storageStarts[ByteKey(storage.key)]! + storage.viewByteOffset, dtype: tensor.dtype,
                                           shape: tensor.shape, strides: tensor.strides, storageOffset: tensor.storageOffset,
                                           swapUnit: swap ? (storage.dtype == .c64 ? 4 : storage.dtype.bitsPerElement / 8) : 1)
            guard layouts.updateValue(layout, forKey: ByteKey(tensorName)) == nil else {
                throw TensorFormatError(.duplicateKey, "two tensors flatten to one name", tensor: tensorName)
            }
            let byteCount = layout.elementCount * layout.elementBytes
            let info = TensorInfo(name: tensorName, dtype: tensor.dtype, shape: tensor.shape, dataOffsets: offset..<(offset + byteCount))
            entries.append(TensorEntry(info: info, fileIndex: 0, fileOffset: layout.span.lowerBound))
            offset += byteCount
            if !layout.isContiguous { strided += 1 }
            storageUse[tensor.storage, default: 0] += 1
        }
        details += selection.details
        details.append(("pytorch storages", "\(storageStarts.count) (\(storageUse.values.filter { $0 > 1 }.count) shared by several tensors)"))
        if strided > 0 { details.append(("pytorch non-contiguous tensors", "\(strided) (read in C order)")) }
    }

    /// A tensor's elements in C order and little-endian, whatever its view: what every read produces.
    public func contiguousBytes(of entry: TensorEntry, in bytes: UnsafeRawBufferPointer) -> [UInt8] {
        guard let layout = layouts[ByteKey(entry.name)] else { return [] }
        return [UInt8](unsafeUninitializedCapacity: entry.byteCount) { buffer, initialized in
            layout.gather(from: bytes, first: 0, count: entry.elementCount, into: UnsafeMutableRawBufferPointer(buffer))
            initialized = entry.byteCount
        }
    }

    /// The legacy container: its five pickles, then the storages' data in key order.
    private static func legacy(_ bytes: UnsafeRawBufferPointer) throws(TensorFormatError)
        -> (TorchUnpickler, PickleValue, [ByteKey: Int], [(String, String)]) {
        var header = TorchUnpickler()
        let (magic, afterMagic) = try header.load(bytes)
        guard magic == .bigInt(Checkpoint.torchLegacyMagic) else { throw TensorFormatError(.torchInvalid, "not torch's legacy magic number") }
        let (version, afterVersion) = try header.load(bytes, from: afterMagic)
        guard version == .int(1001) else { throw TensorFormatError(.torchInvalid, "legacy protocol version \(version.shortDescription), torch writes 1001") }
        let (info, afterInfo) = try header.load(bytes, from: afterVersion)
        var littleEndian = "unknown"
        if let dict = header.heap.dict(info), case .bool(let flag)? = dict["little_endian"] { littleEndian = flag ? "little" : "big" }
        var unpickler = TorchUnpickler(legacyPersistentIDs: true)
        let (root, afterObject) = try unpickler.load(bytes, from: afterInfo)
        let (keysValue, afterKeys) = try unpickler.load(bytes, from: afterObject)
        guard let keys = unpickler.heap.sequence(keysValue) else { throw TensorFormatError(.torchInvalid, "storage key list is not a list") }
        var recordByKey: [ByteKey: TorchStorageReference] = [:]
        for storage in unpickler.storages { recordByKey[ByteKey(storage.key)] = storage }
        var starts: [ByteKey: Int] = [:]
        var position = afterKeys
        for keyValue in keys {
            guard case .string(let key) = keyValue, let storage = recordByKey[ByteKey(key)], starts[ByteKey(key)] == nil else {
                throw TensorFormatError(.torchInvalid, "storage key list names \(keyValue.shortDescription) \(keyValue), which no tensor uses or which repeats")
            }
            guard bytes.count - position >= 8 else { throw TensorFormatError(.truncated, "file ends before storage \(printable(key))'s size") }
            var count: UInt64 = 0
            for i in 0..<8 { count |= UInt64(bytes[position + i]) << (8 * UInt64(i)) }
            guard count == UInt64(storage.recordElements) else {
                throw TensorFormatError(.torchInvalid, "storage \(printable(key)) holds \(count) elements, its persistent id declares \(storage.recordElements)")
            }
            let length = storage.recordElements * (storage.dtype.bitsPerElement / 8)
            guard length <= bytes.count - position - 8 else {
                throw TensorFormatError(.truncated, "storage \(printable(key)) (\(length) bytes) runs past the end of the file")
            }
            starts[ByteKey(key)] = position + 8
            position += 8 + length
        }
        if let missing = unpickler.storages.first(where: { starts[ByteKey($0.key)] == nil }) {
            throw TensorFormatError(.torchInvalid, "storage \(printable(missing.key)) is not in the storage key list")
        }
        guard position == bytes.count else {
            throw TensorFormatError(.trailingBytes, "\(bytes.count - position) bytes follow the last storage")
        }
        return (unpickler, root, starts, [("pytorch container", "legacy (pre-zip torch.save)"), ("pytorch saved on", "\(littleEndian)-endian machine (data is little-endian)")])
    }
}
