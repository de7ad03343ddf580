import TensorFormats

extension Converter {
    /// Writes the plan's tensors, cast as planned and in the input's order, as one HDF5 file
    /// (`-`: standard output) in `layout`, optionally compressed.
    public static func writeHDF5(_ plan: ConvertPlan, metadata: Metadata?, to path: String, force: Bool,
                                 layout: HDF5WriteLayout, compression: OutputCompression?,
                                 progress: ProgressSink? = nil, result: inout ConvertResult) throws {
        let byName = Dictionary(uniqueKeysWithValues: plan.tensors.map { (ByteKey($0.name), $0) })
        var localResult = result
        try HDF5Output.write(to: path, force: force, layout: layout, compression: compression,
                             tensors: plan.specs, metadata: metadata) { info, sink in
            try emit(byName[ByteKey(info.name)]!, from: plan.checkpoint, sink: sink, progress: progress, result: &localResult)
            localResult.bytesWritten += info.byteCount
        }
        result = localResult
    }
}
