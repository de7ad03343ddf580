import Foundation

/// Winograd-transformed convolution weights kept between calls, for weights that do not change
/// (inference over many sampling steps, a frozen teacher's forwards): each 3x3 weight is transformed
/// once instead of at every call.
///
/// Why it is always correct, even around weights that do change: an entry is found by the address of
/// the weight's storage and keeps that storage alive (it holds the `[Float]`). While the entry holds it,
/// the storage is shared, so any write to the weight through any `Tensor` (an optimizer step, a
/// replaced parameter) copies it first and the written weight has a new address: a changed weight can
/// never match a stale entry. The price of using it around weights that do change is memory (stale
/// entries stay until the cache is dropped, within `budgetBytes`) and the copy of each written weight,
/// so enable it for frozen weights only.
///
/// Entries are added until `budgetBytes` of transformed weights are held; later weights are
/// transformed per call as without a cache. F(4x4) transforms are 4x the weight's size, F(2x2) 1.8x.
public final class WinogradWeightCache: @unchecked Sendable {
    /// Default budget: 1 GiB of transformed weights.
    public static let defaultBudgetBytes = 1 << 30

    public let budgetBytes: Int
    private let lock = NSLock()
    private var entries: [Key: Entry] = [:]
    private var bytes = 0

    private struct Key: Hashable {
        let address: UInt
        let count: Int
        let outChannels: Int
        let positions: Int
    }

    private struct Entry {
        /// The weight itself: holding it keeps its storage (the key's address) alive and shared.
        let weight: [Float]
        let transformed: [Float]
    }

    public init(budgetBytes: Int = WinogradWeightCache.defaultBudgetBytes) {
        self.budgetBytes = Swift.max(0, budgetBytes)
    }

    /// Bytes of transformed weights held now.
    public var storedBytes: Int { lock.withLock { bytes } }
    /// Weights held now.
    public var entryCount: Int { lock.withLock { entries.count } }

    /// Whether `transformed` would serve this weight's transform of `length` floats: held, or room for it.
    func serves(weight: [Float], outChannels: Int, positions: Int, length: Int) -> Bool {
        guard let key = key(weight, outChannels: outChannels, positions: positions) else { return false }
        return lock.withLock { entries[key] != nil || bytes + length * MemoryLayout<Float>.stride <= budgetBytes }
    }

    private func key(_ weight: [Float], outChannels: Int, positions: Int) -> Key? {
        weight.withUnsafeBufferPointer { $0.baseAddress.map { UInt(bitPattern: $0) } }.map {
            Key(address: $0, count: weight.count, outChannels: outChannels, positions: positions)
        }
    }

    /// The transform of `weight` for a plan with `positions` positions and `outChannels` rows, made by
    /// `make` (which fills `length` floats) on a miss; nil when it is not held and does not fit the budget.
    func transformed(weight: [Float], outChannels: Int, positions: Int, length: Int,
                     make: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> [Float]? {
        guard let key = key(weight, outChannels: outChannels, positions: positions) else { return nil }
        let size = length * MemoryLayout<Float>.stride
        let found: [Float]?? = lock.withLock {
            if let hit = entries[key] { return .some(hit.transformed) }
            return bytes + size <= budgetBytes ? .some(nil) : .none
        }
        switch found {
        case .some(.some(let hit)): return hit
        case .none: return nil
        case .some(.none): break
        }
        // Transformed outside the lock; two threads missing together both transform, the first one stored wins.
        let made = [Float](unsafeUninitializedCapacity: length) { buffer, n in
            weight.withUnsafeBufferPointer { make($0.baseAddress!, buffer.baseAddress!) }
            n = length
        }
        return lock.withLock {
            if let hit = entries[key] { return hit.transformed }
            guard bytes + size <= budgetBytes else { return made }
            entries[key] = Entry(weight: weight, transformed: made)
            bytes += size
            return made
        }
    }
}

extension NN {
    /// The cache `winogradConv2d` consults on this thread, set by `withWinogradWeightCache`.
    @TaskLocal static var winogradWeightCache: WinogradWeightCache?

    /// Whether this thread's cache serves `weight`'s transform for a plan with `positions` positions.
    static func cachesWinogradTransform(_ weight: Tensor, _ g: ConvGeometry, positions: Int) -> Bool {
        winogradWeightCache?.serves(weight: weight.data, outChannels: g.outC, positions: positions,
                                    length: positions * (g.outC * g.inC + 16)) ?? false
    }

    /// Runs `body` with 3x3 convolution weight transforms served from `cache` (see `WinogradWeightCache`:
    /// results are bit-identical to uncached calls). Only convolutions called on this thread or task use it.
    public static func withWinogradWeightCache<R>(_ cache: WinogradWeightCache?, _ body: () throws -> R) rethrows -> R {
        try $winogradWeightCache.withValue(cache, operation: body)
    }
}
