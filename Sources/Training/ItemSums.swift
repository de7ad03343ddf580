import TensorMath
import UNet

/// Gradients and loss values of a batch-mean loss, gathered one item at a time and added in float64.
/// An item here is one evaluation: a chunk of `DataParallel.chunk(of:)` batch items, fixed by the batch
/// size and the chunk count so that runs with the same count (ranks, or one process with
/// `DMSURGERY_CHUNKS`) evaluate the same chunks.
///
/// Why item by item: the engine adds a batch's contributions to a weight gradient inside its GEMMs, in
/// an order set by the batch's size, so a rank holding half the batch would add its half in another
/// order than one process holding all of it, and the ranks' halves would then be added once more. The
/// difference is float rounding, but AdamW divides each gradient by its running magnitude, so where a
/// gradient is near zero that rounding becomes a visible difference in the update, and it grows over
/// the steps (measured: 2.5e-5 relative per tensor after 20 steps of `unlearn --schedule interleaved`
/// with `-np 2`). Here every item's gradient is the same computation whatever the rank count, and the
/// items' gradients are added in float64 (on each rank, then across the ranks), where a sum of a few
/// float32 values is exact or within 2^-53 of it: the order of the additions no longer shows after the
/// one rounding to float32 (`DataParallel.mean`).
public struct ItemSums {
    /// The first item's gradients, kept in float32 until a second item arrives (a rank holding one item
    /// of the batch then needs no float64 copy of the model's gradients).
    private(set) var first: [String: Tensor]?
    private(set) var sums: [String: [Double]] = [:]
    /// The per-item loss values, added.
    private(set) var values: [Double] = []
    public private(set) var items = 0

    public init() {}

    /// Adds one item's parameter gradients and loss values (the same values, in the same order, for
    /// every item).
    public mutating func add(_ gradients: [String: Tensor], values itemValues: [Double]) {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("item sums add", profileMark) }
        items += 1
        if values.isEmpty { values = itemValues } else {
            for i in values.indices { values[i] += itemValues[i] }
        }
        if items == 1 {
            first = gradients
            return
        }
        if let kept = first {
            for (name, t) in kept { sums[name] = t.data.map(Double.init) }
            first = nil
        }
        for (name, t) in gradients {
            if sums[name] == nil { sums[name] = [Double](repeating: 0, count: t.count) }
            t.data.withUnsafeBufferPointer { g in
                sums[name]!.withUnsafeMutableBufferPointer { s in
                    for i in 0..<g.count { s[i] += Double(g[i]) }
                }
            }
        }
    }

    /// Takes the first item's gradient for `name` out (nil when the sums are in float64 or absent), so
    /// that its storage can be reused for the result without a copy.
    mutating func takeFirst(_ name: String) -> Tensor? { first?.removeValue(forKey: name) }

    /// The float64 sum for `name`, when more than one item was added and one of them had a gradient for it.
    func sum(_ name: String) -> [Double]? { sums[name] }

    /// The names that have a gradient.
    var names: Set<String> {
        if let first { return Set(first.keys) }
        return Set(sums.keys)
    }
}

extension NoisedBatch {
    /// The batch as consecutive batches of `size` items (a divisor of the batch), in order.
    func chunks(of size: Int) -> [NoisedBatch] {
        stride(from: 0, to: timesteps.count, by: size).map { items(Array($0..<($0 + size))) }
    }
}

extension LowerLevelValue {
    /// total, diffusion, outputKD, featureKD (0 without a teacher): what `ItemSums` adds.
    var parts: [Double] { [total, diffusion, outputKD ?? 0, featureKD ?? 0].map(Double.init) }

    /// A value from the means of `parts` (`distilled`: whether a teacher was used).
    init<C: Collection>(parts: C, distilled: Bool) where C.Element == Double, C.Index == Int {
        let p = Array(parts)
        self.init(total: Float(p[0]), diffusion: Float(p[1]), outputKD: distilled ? Float(p[2]) : nil,
                  featureKD: distilled ? Float(p[3]) : nil)
    }
}
