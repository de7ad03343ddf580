import TensorFormats

extension UNet2D {
    /// Refuses a batch before its tensors are allocated: zero sizes (which would run empty convolutions
    /// and divide by zero in the norms), sides the down blocks cannot halve, and batches whose
    /// activations cannot fit in memory. `option` names what the user sets (`--batch`, `--size`).
    ///
    /// The activation estimate is a lower bound, so nothing that fits is refused: inference keeps about
    /// four feature maps of the widest level alive; training keeps, per level, the inputs of every
    /// layer of its ResNets (six maps each) for backward.
    public func checkInput(batch: Int, height: Int, width: Int, training: Bool, option: String) throws {
        guard batch >= 1 else { throw UNetError(.badInput, "sample", "a batch of \(batch) items (\(option)): at least 1") }
        guard height >= 1, width >= 1 else {
            throw UNetError(.badInput, "sample", "height and width \(height)x\(width) (\(option)): both must be at least 1")
        }
        let factor = config.downsampleFactor
        guard height % factor == 0, width % factor == 0 else {
            throw UNetError(.badInput, "sample", "height and width \(height)x\(width) (\(option)) must be multiples of \(factor)")
        }
        try MemoryBudget.check(activationBytes(batch: batch, height: height, width: width, training: training),
                               for: "the activations of \(batch) x \(height)x\(width) samples", option: option)
    }

    /// The lower bound `checkInput` uses, in bytes (nil when it overflows): about four feature maps of
    /// the widest level for inference; for a recording forward, the inputs of every layer of every
    /// level's ResNets (six maps each), which is what a tape without recomputation keeps.
    public func activationBytes(batch: Int, height: Int, width: Int, training: Bool) -> Int? {
        var maps: [Int?] = []
        for (i, c) in config.blockOutChannels.enumerated() {
            let map = MemoryBudget.product([batch, c, height >> i, width >> i])
            let copies = training ? 6 * (2 * config.layersPerBlock[i] + 1) : 4
            maps.append(map.flatMap { MemoryBudget.product([$0, copies]) })
        }
        let floats = training ? MemoryBudget.sum(maps) : maps.reduce(0 as Int?) { a, b in a.flatMap { a in b.map { max(a, $0) } } }
        return floats.flatMap { MemoryBudget.product([$0, MemoryLayout<Float>.size]) }
    }
}
