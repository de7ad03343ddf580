import TensorFormats

extension CLIPTextModel {
    /// Loads a text encoder folder (`config.json` and `model.safetensors`, or a sharded index), a
    /// pipeline folder's `text_encoder/`, or a single safetensors file with a config beside it.
    public init(path: String) throws {
        let checkpoint = try Checkpoint.open(path)
        guard let json = checkpoint.configJSON else {
            throw CLIPError(.modelBadConfig, "no config.json beside the weights", file: path)
        }
        let config = try CLIPTextConfig(json: json, file: path + "/config.json")
        var weights = try WeightTable(checkpoint: checkpoint)
        try self.init(config: config, weights: &weights)
    }
}
