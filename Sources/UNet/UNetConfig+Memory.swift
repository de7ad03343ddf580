import TensorFormats

extension UNetConfig {
    /// An estimate (within a small factor, from below) of a dense model's parameter count, or nil when
    /// it overflows: ResNets (two 3x3 convolutions, up blocks with concatenated skips), attention
    /// (self and cross attention, GEGLU feed-forward, projections), the time and added embeddings. Computed before a model is built
    /// from a config alone, so that a 10^9-wide config is refused with a number instead of an
    /// allocation failure.
    public var denseParameterEstimate: Int? {
        let context = crossAttentionDim ?? 0
        var terms: [Int?] = []
        for (i, c) in blockOutChannels.enumerated() {
            let layers = MemoryBudget.sum([layersPerBlock[i], layersPerBlock[i], 1])
            let resnet = MemoryBudget.product([27, c, c])
            var attention: Int? = 0
            let attends = i < downBlockTypes.count && downBlockTypes[i] != .down
            if attends {
                let depth = family == .conditional ? transformerLayersPerBlock[i] : 1
                let perLayer = MemoryBudget.sum([MemoryBudget.product([18, c, c]), MemoryBudget.product([2, c, context])])
                attention = perLayer.flatMap { MemoryBudget.product([depth, $0]) }
            }
            let block = MemoryBudget.sum([resnet, attention])
            terms.append(layers.flatMap { l in block.flatMap { MemoryBudget.product([l, $0]) } })
        }
        // The time embedding and SDXL's add_embedding: a 65,536-wide time_embedding_dim or
        // projection_class_embeddings_input_dim alone would be billions of parameters.
        let temb = timeEmbeddingDim ?? blockOutChannels[0] * 4
        terms.append(MemoryBudget.product([blockOutChannels[0] + temb, temb]))
        if let textTime { terms.append(MemoryBudget.product([textTime.inputDim + temb, temb])) }
        return MemoryBudget.sum(terms)
    }
}
