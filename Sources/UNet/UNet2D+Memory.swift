import TensorFormats

extension UNet2D {
    /// Refuses a batch before its tensors are allocated: zero sizes (which would run empty convolutions
    /// and divide by zero in the norms), sides the down blocks cannot halve, and batches whose
    /// activations cannot fit in memory. `option` names what the user sets (`--batch`, `--size`).
    ///
    /// The activation estimate counts what is alive at the peak: inference holds every skip connection
    /// of the down path until the up path consumes it, plus the working set of the largest level;
    /// training keeps, per level, the inputs of every layer of its ResNets (six maps each) for backward.
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

    /// The estimate `checkInput` uses, in bytes (nil when it overflows). Inference: the skips the down
    /// path keeps for the up path (each level's ResNet outputs and its downsampled map) plus
    /// `inferenceWorkingMaps` maps of the largest level (an up block's concatenated input, its ResNet's
    /// normalised and convolved maps, and the Winograd transforms of both convolutions' inputs and
    /// outputs, 2.25 maps each). Four maps of the widest level, the estimate this replaced, ran 3-7x
    /// below what sampling used (issue 25). Training: the inputs of every layer of every level's ResNets
    /// (six maps each), which is what a tape without recomputation keeps.
    public func activationBytes(batch: Int, height: Int, width: Int, training: Bool) -> Int? {
        var skips: [Int?] = [], working: [Int?] = [], tape: [Int?] = []
        for (i, c) in config.blockOutChannels.enumerated() {
            let map = MemoryBudget.product([batch, c, height >> i, width >> i])
            tape.append(map.flatMap { MemoryBudget.product([$0, 6 * (2 * config.layersPerBlock[i] + 1)]) })
            skips.append(map.flatMap { MemoryBudget.product([$0, config.layersPerBlock[i] + 1]) })
            working.append(map.flatMap { MemoryBudget.product([$0, Self.inferenceWorkingMaps]) })
        }
        let largest = working.reduce(0 as Int?) { a, b in a.flatMap { a in b.map { max(a, $0) } } }
        let floats = training ? MemoryBudget.sum(tape) : MemoryBudget.sum(skips + [largest])
        return floats.flatMap { MemoryBudget.product([$0, MemoryLayout<Float>.size]) }
    }

    /// Feature maps of one level alive at once in an up block (see `activationBytes`): its input and
    /// skip (2), their concatenation (2), the ResNet's normalised input (2) and two convolved maps, and
    /// the Winograd transforms of a convolution's input and output (2.25 x (2 + 1)), rounded up with
    /// the attention block's projections of the level.
    static let inferenceWorkingMaps = 16
}
