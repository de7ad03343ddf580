extension Checkpoint {
    /// A view of some of this checkpoint's tensors under other names, with a config: how a file in
    /// another layout (an original SD single file, a ComfyUI-GGUF UNet) is read as a diffusers model.
    /// Reads go to the original tensors, so a format that finds its tensors by name (GGUF's
    /// dequantization) still finds them.
    public func renamed(_ tensors: [(entry: TensorEntry, name: String)], configJSON: String?) throws(TensorFormatError) -> Checkpoint {
        var entries: [TensorEntry] = []
        var originals: [ByteKey: TensorEntry] = [:]
        for (entry, name) in tensors {
            var renamed = entry
            renamed.info.name = name
            entries.append(renamed)
            originals[ByteKey(name)] = entry
        }
        return try Checkpoint(name: name, format: format, files: files, entries: entries, metadata: metadata, configJSON: configJSON,
                              details: details, provider: RenamedProvider(base: provider, originals: originals))
    }
}

/// Reads a renamed tensor as its original.
final class RenamedProvider: TensorDataProvider {
    let base: TensorDataProvider
    let originals: [ByteKey: TensorEntry]

    init(base: TensorDataProvider, originals: [ByteKey: TensorEntry]) {
        self.base = base
        self.originals = originals
    }

    var isSequential: Bool { base.isSequential }

    func read(_ entry: TensorEntry, chunkBytes: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try base.read(originals[ByteKey(entry.name)] ?? entry, chunkBytes: chunkBytes, body)
    }

    func read(_ entry: TensorEntry, range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try base.read(originals[ByteKey(entry.name)] ?? entry, range: range, body)
    }

    func finish() throws { try base.finish() }
}
