import Foundation
import TensorFormats
import TensorMath
import UNet

/// Data-parallel training over MPI ranks: every rank holds the models, draws the randomness of the
/// whole global batch from the one stream (so the stream, not the rank count, decides which samples
/// exist) and evaluates its contiguous slice of it; gradients and losses are summed over the ranks
/// before the optimizer step, so every rank applies the same update and holds the same weights.
///
/// Equivalence with one process: every loss is a mean over the batch's items (the UNet has no
/// cross-item statistics), so the batch mean is the sum of the items' values over the batch size.
/// Every item is evaluated alone and the items' gradients are added in float64 (`ItemSums`), on each
/// rank and then across the ranks, so the weights do not depend on the rank count beyond the rare
/// float64 rounding that reaches float32. The reduction is `MPI_Allreduce`: Open MPI picks its
/// algorithm from the rank count and the message size alone (the order does not depend on timing),
/// and each element's sum is computed once and distributed, so all ranks get the same bits.
public struct DataParallel: Sendable {
    public let rank: Int
    public let size: Int
    let mpi: OpenMPI?
    /// The most chunks a batch is evaluated in (`chunk(of:)`): `DMSURGERY_CHUNKS` when set, else 1 in one
    /// process and `rankChunks` under mpirun.
    public let maximumChunks: Int

    /// One process, no MPI: every operation is the identity, and a batch is one chunk (unless
    /// `DMSURGERY_CHUNKS` says otherwise).
    public static let solo = DataParallel(rank: 0, size: 1, mpi: nil, maximumChunks: (try? configuredChunks()) ?? 1)

    /// The chunk count of ranks when `DMSURGERY_CHUNKS` is not set: 8 (so 2, 4 and 8 ranks evaluate the
    /// same chunks as one another, and as one process with `DMSURGERY_CHUNKS=8`).
    public static let rankChunks = 8

    /// This world with batches split into at most `chunks` chunks (one process reproducing the ranks'
    /// computation bit for bit with `rankChunks`; tests).
    public func splitting(into chunks: Int) -> DataParallel {
        DataParallel(rank: rank, size: size, mpi: mpi, maximumChunks: Swift.max(1, chunks))
    }

    /// `DMSURGERY_CHUNKS`: a positive integer, or nil when unset; a bad value is `invalid-argument`.
    static func configuredChunks() throws -> Int? {
        guard let text = ProcessInfo.processInfo.environment["DMSURGERY_CHUNKS"] else { return nil }
        guard let n = Int(text), n >= 1, n <= 1 << 20 else {
            throw TensorFormatError(.invalidArgument, "must be a positive integer (the most chunks a batch is evaluated in), got '\(text)'",
                                    file: "DMSURGERY_CHUNKS")
        }
        return n
    }

    public var isRoot: Bool { rank == 0 }

    nonisolated(unsafe) private static var started: DataParallel?
    private static let lock = NSLock()

    /// This process's world: under `mpirun` with more than one rank, libmpi is loaded and
    /// initialised (once); otherwise `solo`, without touching MPI.
    public static func join() throws -> DataParallel {
        lock.lock(); defer { lock.unlock() }
        if let started { return started }
        let chunks = try configuredChunks()
        guard OpenMPI.launched, OpenMPI.announcedSize != 1 else { return .solo }
        let mpi = try OpenMPI()
        let world = mpi.size > 1 ? DataParallel(rank: mpi.rank, size: mpi.size, mpi: mpi, maximumChunks: chunks ?? rankChunks) : .solo
        if mpi.size == 1 { mpi.finalize() }
        started = world
        return world
    }

    /// The world if one was joined (nil for commands that never train).
    public static var current: DataParallel? {
        lock.lock(); defer { lock.unlock() }
        return started
    }

    /// The world size `mpirun` announced in the environment, known before joining.
    public static var announcedSize: Int { OpenMPI.launched ? (OpenMPI.announcedSize ?? 1) : 1 }

    /// This rank's items of a global batch of `batch` (a multiple of `size`).
    public func shard(of batch: Int) -> Range<Int> {
        let per = batch / size
        return rank * per..<(rank + 1) * per
    }

    /// How many items of a slice are evaluated together: the batch split into at most `maximumChunks`
    /// equal chunks (the largest divisor of `batch` up to it), chosen from the batch size and that count
    /// alone, so that runs with the same count (one process with `DMSURGERY_CHUNKS=8` and every rank count
    /// dividing the number of chunks, under the ranks' default 8) evaluate the same chunks and their
    /// weights are identical bit for bit; other rank counts use the largest common divisor with their
    /// slice. One process evaluates the whole batch at once by default: each chunk pays every op's fixed
    /// cost again, which small models feel (the demo's distillation step: 0.205 s in 8 chunks).
    public func chunk(of batch: Int) -> Int {
        let chunks = (1...Swift.max(1, Swift.min(maximumChunks, batch))).last { batch % $0 == 0 } ?? 1
        var a = batch / chunks, b = batch / size
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }

    /// The batch means of the chunks' gradients and values summed on every rank (`ItemSums`, one entry
    /// per chunk of `chunk(of:)` items, each a mean over its chunk): the float64 sums are added across
    /// the ranks with `MPI_Allreduce`, divided by the number of `chunks` in the whole batch and rounded
    /// to float32 once. The reduction runs over `model`'s parameters in sorted-name order, packed into
    /// buffers of at most 2^22 values (one call per buffer, not per tensor: latency grows with the
    /// number of calls); a parameter is in the result when any rank has a gradient for it.
    public func mean(_ items: consuming ItemSums, chunks: Int, layout model: UNet2D) -> (gradients: [String: Tensor], values: [Double]) {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("batch mean", profileMark) }
        let scale = 1 / Double(chunks)
        var values = items.values
        if let mpi {
            let count = values.count
            values.withUnsafeMutableBytes { mpi.allreduce($0.baseAddress!, count: count, type: mpi.double, op: mpi.sum) }
        }
        let parameters = model.parameters
        var names = items.names.sorted()
        if let mpi {
            let all = parameters.keys.sorted(), local = items.names
            var present = all.map { Int32(local.contains($0) ? 1 : 0) }
            let count = all.count
            present.withUnsafeMutableBytes { mpi.allreduce($0.baseAddress!, count: count, type: mpi.int, op: mpi.max) }
            names = zip(all, present).filter { $0.1 != 0 }.map(\.0)
        }
        // The results, in the first item's float32 buffers where there is one (no second copy of the
        // model's gradients), else in new ones, filled from the float64 sums when there is no MPI.
        var outputs: [Tensor] = names.map { name in
            if var t = items.takeFirst(name) {
                // One chunk (scale 1) leaves every value as it is: no pass over the model's gradients.
                if mpi == nil && scale != 1 {
                    t.data.withUnsafeMutableBufferPointer { g in for i in 0..<g.count { g[i] = Float(Double(g[i]) * scale) } }
                }
                return t
            }
            let shape = parameters[name]?.shape ?? [items.sum(name)?.count ?? 0]
            if mpi == nil, let s = items.sum(name) { return Tensor(shape: shape, data: s.map { Float($0 * scale) }) }
            return Tensor(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *)))
        }
        if let mpi { reduce(&outputs, names: names, items: items, scale: scale, mpi: mpi) }
        return (Dictionary(uniqueKeysWithValues: zip(names, outputs)), values.map { $0 * scale })
    }

    /// Sums `outputs` (each rank's float32 first item, or its float64 `items` sums) across the ranks in
    /// float64, packed into buffers of at most 2^22 values in `names` order, and stores sum × `scale`.
    private func reduce(_ outputs: inout [Tensor], names: [String], items: ItemSums, scale: Double, mpi: OpenMPI) {
        let capacity = 1 << 22
        var staging = [Double](repeating: 0, count: capacity)
        var pending: [(tensor: Int, range: Range<Int>, at: Int)] = []
        var used = 0
        func flush() {
            guard used > 0 else { return }
            let count = used
            staging.withUnsafeMutableBytes { mpi.allreduce($0.baseAddress!, count: count, type: mpi.double, op: mpi.sum) }
            for part in pending {
                outputs[part.tensor].data.withUnsafeMutableBufferPointer { out in
                    for (j, i) in part.range.enumerated() { out[i] = Float(staging[part.at + j] * scale) }
                }
            }
            pending.removeAll(keepingCapacity: true)
            used = 0
        }
        for (t, name) in names.enumerated() {
            let sum = items.sum(name)
            let count = outputs[t].count
            var start = 0
            while start < count {
                let n = Swift.min(count - start, capacity - used)
                if let sum {
                    for j in 0..<n { staging[used + j] = sum[start + j] }
                } else {
                    outputs[t].data.withUnsafeBufferPointer { g in for j in 0..<n { staging[used + j] = Double(g[start + j]) } }
                }
                pending.append((t, start..<(start + n), used))
                used += n
                start += n
                if used == capacity { flush() }
            }
        }
        flush()
    }

    /// True on every rank when it is true on any: ranks stop at the same step.
    public func any(_ flag: Bool) -> Bool {
        guard let mpi else { return flag }
        var value: Int32 = flag ? 1 : 0
        withUnsafeMutableBytes(of: &value) { mpi.allreduce($0.baseAddress!, count: 1, type: mpi.int, op: mpi.max) }
        return value != 0
    }

    /// Waits until every rank gets here.
    public func barrier() { mpi?.barrier() }

    /// Ends MPI cleanly (every rank, after the last collective call).
    public func finish() { mpi?.finalize() }

    /// Stops every rank of the job with `code` (after the error line is printed); no-op without MPI.
    public static func abortIfJoined(_ code: Int32) {
        guard let mpi = current?.mpi else { return }
        mpi.abort(code)
    }
}

extension NoisedBatch {
    /// Items `range` of the batch (the whole batch is returned as is).
    func slice(_ range: Range<Int>?) -> NoisedBatch {
        guard let range, range != 0..<timesteps.count else { return self }
        return items(Array(range))
    }
}
