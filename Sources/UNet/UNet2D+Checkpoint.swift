import TensorFormats
import TensorMath

extension UNet2D {
    /// Builds the model from an opened checkpoint: its diffusers config (config.json beside the weights
    /// or the `dmsurgery.config` metadata key) and its tensors, any float dtype widened to float32.
    /// A frozen model (a teacher) may hold them in 16 bits instead (`FrozenStorage`), narrowed one
    /// tensor at a time as they are read, so the float32 model never exists in memory; or read them
    /// from the mapped file at each use (`.mapped`: a mapped checkpoint whose tensors are all F32, F16
    /// or BF16: `FrozenStorage.canMap`; otherwise the file's own storage, `FrozenStorage.exact(for:)`).
    public init(checkpoint: Checkpoint, frozen storage: FrozenStorage = .float32) throws {
        guard let json = checkpoint.configJSON else {
            throw UNetError(.invalidConfig, checkpoint.name,
                            "no diffusers config (config.json beside the weights or `dmsurgery.config` metadata)")
        }
        let config = try UNetConfig(json: json)
        let source = checkpoint.isSequential ? try checkpoint.withRandomAccess() : checkpoint
        var weights: [String: Tensor] = [:]
        var narrow: [String: NarrowTensor] = [:]
        if storage == .mapped {
            guard FrozenStorage.canMap(source) else {
                let dtypes = Dictionary(source.entries.map { ($0.dtype, $0.elementCount) }, uniquingKeysWith: +)
                let dominant = dtypes.max { $0.value < $1.value || ($0.value == $1.value && $0.key.rawValue > $1.key.rawValue) }?.key
                try self.init(checkpoint: source, frozen: dominant.map(FrozenStorage.exact(for:)) ?? .float32)
                return
            }
            let file = MappedWeightFile(source)
            let mapped = Dictionary(uniqueKeysWithValues: source.entries.map { ($0.name, MappedTensor(file: file, entry: $0)) })
            try self.init(config: config, table: ParameterTable([:], mapped: mapped))
            return
        }
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
