import Foundation
import TensorFormats
import TensorMath

/// Data-parallel training over MPI ranks: every rank holds the models, draws the randomness of the
/// whole global batch from the one stream (so the stream, not the rank count, decides which samples
/// exist) and evaluates its contiguous slice of it; gradients and losses are averaged over the ranks
/// before the optimizer step, so every rank applies the same update and holds the same weights.
///
/// Equivalence with one process: every loss is a mean over the batch's items (the UNet has no
/// cross-item statistics), so the mean of the N slice means (equal slices) is the batch mean; the
/// result differs from a single process by float rounding only. The reduction is `MPI_Allreduce`
/// on one buffer laid out in sorted parameter-name order: Open MPI picks its algorithm from the rank
/// count and the message size alone, so for a given N the summation order is fixed (it does not
/// depend on timing), and each element's sum is computed once and distributed, so all ranks get the
/// same bits.
public struct DataParallel: Sendable {
    public let rank: Int
    public let size: Int
    let mpi: OpenMPI?

    /// One process, no MPI: every operation is the identity.
    public static let solo = DataParallel(rank: 0, size: 1, mpi: nil)

    public var isRoot: Bool { rank == 0 }

    nonisolated(unsafe) private static var started: DataParallel?
    private static let lock = NSLock()

    /// This process's world: under `mpirun` with more than one rank, libmpi is loaded and
    /// initialised (once); otherwise `solo`, without touching MPI.
    public static func join() throws -> DataParallel {
        lock.lock(); defer { lock.unlock() }
        if let started { return started }
        guard OpenMPI.launched, OpenMPI.announcedSize != 1 else { return .solo }
        let mpi = try OpenMPI()
        let world = mpi.size > 1 ? DataParallel(rank: mpi.rank, size: mpi.size, mpi: mpi) : .solo
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

    /// Averages each gradient over the ranks (each rank's are the mean over its slice).
    public func average(_ gradients: inout [String: Tensor]) {
        guard let mpi else { return }
        let names = gradients.keys.sorted()
        var buffer = [Float]()
        buffer.reserveCapacity(names.reduce(0) { $0 + gradients[$1]!.count })
        for name in names { buffer.append(contentsOf: gradients[name]!.data) }
        let total = buffer.count
        buffer.withUnsafeMutableBytes { raw in
            let chunk = 1 << 30
            var start = 0
            while start < total {
                let n = Swift.min(chunk, total - start)
                mpi.allreduce(raw.baseAddress! + start * MemoryLayout<Float>.stride, count: n, type: mpi.float, op: mpi.sum)
                start += n
            }
        }
        let scale = 1 / Float(size)
        var offset = 0
        for name in names {
            let n = gradients[name]!.count
            gradients[name]!.data.withUnsafeMutableBufferPointer { g in
                for i in 0..<n { g[i] = buffer[offset + i] * scale }
            }
            offset += n
        }
    }

    /// The mean over the ranks of per-rank values (losses, each a mean over its slice).
    public func average(_ values: [Double]) -> [Double] {
        guard let mpi, !values.isEmpty else { return values }
        var buffer = values
        buffer.withUnsafeMutableBytes { mpi.allreduce($0.baseAddress!, count: values.count, type: mpi.double, op: mpi.sum) }
        return buffer.map { $0 / Double(size) }
    }

    public func average(_ value: Float) -> Float {
        guard mpi != nil else { return value }
        return Float(average([Double(value)])[0])
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

extension DataParallel {
    /// The rank-mean of a lower-level value.
    func average(_ value: LowerLevelValue) -> LowerLevelValue {
        guard mpi != nil else { return value }
        let parts = [value.total, value.diffusion, value.outputKD ?? 0, value.featureKD ?? 0].map(Double.init)
        let mean = average(parts).map(Float.init)
        return LowerLevelValue(total: mean[0], diffusion: mean[1], outputKD: value.outputKD.map { _ in mean[2] },
                               featureKD: value.featureKD.map { _ in mean[3] })
    }
}

extension NoisedBatch {
    /// Items `range` of the batch (the whole batch is returned as is).
    func slice(_ range: Range<Int>?) -> NoisedBatch {
        guard let range, range != 0..<timesteps.count else { return self }
        let items = Array(range)
        return NoisedBatch(sample: sample.items(items), timesteps: Array(timesteps[range]), cond: cond?.items(items),
                           target: target.items(items))
    }
}
