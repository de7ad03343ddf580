import TensorFormats
import TensorMath

extension UNet2D {
    /// Builds the model from an opened checkpoint: its diffusers config (config.json beside the weights
    /// or the `dmsurgery.config` metadata key) and its tensors, any float dtype widened to float32.
    public init(checkpoint: Checkpoint) throws {
        guard let json = checkpoint.configJSON else {
            throw UNetError(.invalidConfig, checkpoint.name,
                            "no diffusers config (config.json beside the weights or `dmsurgery.config` metadata)")
        }
        let config = try UNetConfig(json: json)
        let source = checkpoint.isSequential ? try checkpoint.withRandomAccess() : checkpoint
        var weights: [String: Tensor] = [:]
        weights.reserveCapacity(source.entries.count)
        for entry in source.entries {
            weights[entry.name] = Tensor(shape: entry.shape, data: try source.floats(of: entry))
        }
        try self.init(config: config, weights: weights)
    }
}
