import TensorFormats
import TensorMath

extension UNet2D {
    /// Builds the model from an opened checkpoint: its diffusers config (config.json beside the weights
    /// or the `dmsurgery.config` metadata key) and its tensors, any float dtype widened to float32.
    /// A frozen model (a teacher) may hold them in 16 bits instead (`FrozenStorage`), narrowed one
    /// tensor at a time as they are read, so the float32 model never exists in memory.
    public init(checkpoint: Checkpoint, frozen storage: FrozenStorage = .float32) throws {
        guard let json = checkpoint.configJSON else {
            throw UNetError(.invalidConfig, checkpoint.name,
                            "no diffusers config (config.json beside the weights or `dmsurgery.config` metadata)")
        }
        let config = try UNetConfig(json: json)
        let source = checkpoint.isSequential ? try checkpoint.withRandomAccess() : checkpoint
        var weights: [String: Tensor] = [:]
        var narrow: [String: NarrowTensor] = [:]
        for entry in source.entries {
            let tensor = Tensor(shape: entry.shape, data: try source.floats(of: entry))
            if storage == .float32 {
                weights[entry.name] = tensor
            } else {
                narrow[entry.name] = NarrowTensor(tensor, storage: storage)
            }
        }
        try self.init(config: config, table: ParameterTable(weights, narrow: narrow))
    }
}
