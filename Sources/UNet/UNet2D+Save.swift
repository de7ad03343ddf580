import TensorFormats
import TensorMath

extension UNet2D {
    /// Writes the weights as F32 safetensors (`-` for standard output) with `configJSON` as the
    /// `dmsurgery.config` metadata, so the file loads anywhere a checkpoint is accepted. A pruned model
    /// keeps its base config: its widths are read back from the shapes. Each tensor's bytes go to the
    /// output straight from its storage: an SD-size model written at the end of training takes no
    /// second copy of itself.
    public func write(to path: String, configJSON: String, metadata: Metadata = Metadata(), force: Bool = false) throws {
        var meta = metadata
        meta[MetadataKey.config] = configJSON
        let writer = SafetensorsWriter(tensors: parameters.keys.sorted().map { ($0, DType.f32, parameters[$0]!.shape) },
                                       metadata: meta)
        let output = try OutputFile(path: path, force: force)
        try writer.write(to: output) { tensor, sink in
            try parameters[tensor.name]!.data.withUnsafeBytes { try sink($0) }
        }
        try output.commit()
    }
}
