import TensorFormats

/// A student that is a renaming of its teacher's tensors (a depth cut): what the writer and the
/// folder it goes into need.
public protocol CopyPlan {
    /// (student tensor, teacher tensor) in the teacher's storage order.
    var copies: [(student: String, teacher: String)] { get }
    /// The student's config.json.
    var configJSON: String { get }
    /// The copy map as the `dmsurgery.depth` metadata value.
    var mapJSON: String { get }
}

extension DepthPlan: CopyPlan {}

extension CopyPlan {
    /// Writes the student: every tensor of `copies` under its student name, its bytes those of the
    /// teacher tensor (dtype and shape unchanged). `checkpoint` must allow random access (the writer's
    /// order is by dtype and name).
    @discardableResult
    public func write(_ checkpoint: Checkpoint, metadata: Metadata?, to output: OutputFile,
                      progress: ProgressSink? = nil) throws -> ConvertResult {
        var specs: [(name: String, dtype: DType, shape: [Int])] = []
        var source: [String: TensorEntry] = [:]
        for (student, teacher) in copies {
            guard let entry = checkpoint.entry(named: teacher) else {
                throw SurgeryError(.notFound, "the copy map names a tensor the checkpoint lacks", file: checkpoint.name, tensor: teacher)
            }
            specs.append((student, entry.dtype, entry.shape))
            source[student] = entry
        }
        let writer = SafetensorsWriter(tensors: specs, metadata: metadata)
        var result = ConvertResult()
        var bytesRead = 0
        try writer.write(to: output) { info, sink in
            result.tensors += 1
            try checkpoint.read(source[info.name]!) { piece in
                try sink(piece)
                bytesRead += piece.count
                progress?(bytesRead)
            }
        }
        result.bytesRead = bytesRead
        result.bytesWritten = output.bytesWritten
        return result
    }
}
