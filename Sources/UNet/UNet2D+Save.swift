import TensorFormats
import TensorMath

extension UNet2D {
    /// Writes the weights as F32 safetensors (`-` for standard output) with `configJSON` as the
    /// `dmsurgery.config` metadata, so the file loads anywhere a checkpoint is accepted. A pruned model
    /// keeps its base config: its widths are read back from the shapes.
    public func write(to path: String, configJSON: String, metadata: Metadata = Metadata(), force: Bool = false) throws {
        var meta = metadata
        meta[MetadataKey.config] = configJSON
        try SafetensorsWriter.writeFloats(parameters.keys.sorted().map { ($0, parameters[$0]!.shape, parameters[$0]!.data) },
                                          metadata: meta, to: path, force: force)
    }
}
