/// Writes a safetensors file or stream tensor by tensor.
///
/// The whole header is known before any data (the format requires it, safetensors #291 and #531),
/// so the caller plans every name, dtype and shape first, then supplies each tensor's bytes in the
/// header's order, in as many pieces as it likes. Same tensors and metadata give the same bytes as the
/// reference writer.
public struct SafetensorsWriter {
    public let header: SafetensorsHeader

    public init(tensors: [(name: String, dtype: DType, shape: [Int])], metadata: Metadata?) {
        header = SafetensorsHeader.layout(tensors, metadata: metadata)
    }

    /// Total bytes the output will have.
    public var fileSize: Int { header.dataStart + header.dataLength }

    /// Writes the header, then asks `produce` for each tensor's bytes in order; `produce` calls the
    /// sink it is given with consecutive pieces. A tensor given too many or too few bytes is an error.
    public func write(to output: OutputFile,
                      produce: (TensorInfo, (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        try output.write(header.serializedPrefix())
        for tensor in header.tensors {
            var written = 0
            try produce(tensor) { piece in
                written += piece.count
                guard written <= tensor.byteCount else {
                    throw TensorFormatError(.sizeMismatch, "more bytes supplied than the header declares", file: output.path, tensor: tensor.name)
                }
                try output.write(piece)
            }
            guard written == tensor.byteCount else {
                throw TensorFormatError(.sizeMismatch, "\(written) bytes supplied, the header declares \(tensor.byteCount)", file: output.path, tensor: tensor.name)
            }
        }
    }

    /// Writes small in-memory tensors to `path` (`-` for standard output) atomically.
    public static func write(_ tensors: [(name: String, dtype: DType, shape: [Int], bytes: [UInt8])],
                             metadata: Metadata?, to path: String, force: Bool = false) throws {
        let writer = SafetensorsWriter(tensors: tensors.map { ($0.name, $0.dtype, $0.shape) }, metadata: metadata)
        let byName = Dictionary(tensors.map { (ByteKey($0.name), $0.bytes) }, uniquingKeysWith: { first, _ in first })
        guard byName.count == tensors.count else {
            throw TensorFormatError(.duplicateKey, "two tensors share a name", file: path)
        }
        let output = try OutputFile(path: path, force: force)
        try writer.write(to: output) { tensor, sink in
            try byName[ByteKey(tensor.name)]!.withUnsafeBytes { try sink($0) }
        }
        try output.commit()
    }

    /// Convenience for float32 data (engine outputs, gradients).
    public static func writeFloats(_ tensors: [(name: String, shape: [Int], values: [Float])],
                                   metadata: Metadata? = nil, to path: String, force: Bool = false) throws {
        try write(tensors.map { t in
            (t.name, DType.f32, t.shape, t.values.withUnsafeBytes { Array($0) })
        }, metadata: metadata, to: path, force: force)
    }
}
