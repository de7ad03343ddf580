import CBLAS
import Dispatch
import Foundation

/// Thread settings for the whole module. TensorMath does all of its own parallelism: OpenBLAS runs
/// single-threaded and large sgemms are split across the cores here (`sgemmParallel`). OpenBLAS's own
/// worker threads spin-wait after each call, and on a 2-core machine that spinning starves the
/// Dispatch workers running the transforms, norms and elementwise loops between sgemms (measured: a
/// Winograd conv ran 10x slower with 2 OpenBLAS threads than with 1 plus our own split).
public enum ComputeThreads {
    /// Cores the process may use; the fan-out for every parallel loop and sgemm split.
    public static let cores = Swift.max(1, ProcessInfo.processInfo.activeProcessorCount)

    private static let configured: Bool = {
        dms_blas_set_threads(1)
        return true
    }()

    /// Puts OpenBLAS in single-threaded mode the first time it is called; every kernel calls it.
    @inlinable public static func ensureConfigured() { _ = isConfigured }

    @usableFromInline static var isConfigured: Bool { configured }
}

/// Splitting a loop over the cores.
@usableFromInline
enum Parallel {
    /// Calls `body` on disjoint subranges covering 0..<n, in parallel when each core gets at least
    /// `grain` iterations of work, serially otherwise. `body` must only write state owned by its range.
    @inlinable
    static func forRanges(_ n: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        if n <= 0 { return }
        let workers = Swift.min(ComputeThreads.cores, Swift.max(1, n / Swift.max(1, grain)))
        if workers <= 1 {
            body(0..<n)
            return
        }
        // A few chunks per worker smooths out uneven chunk cost.
        let chunks = Swift.min(n, workers * 4)
        withoutActuallyEscaping(body) { escapable in
            // Safe: concurrentPerform returns only after every iteration has run, and callers promise
            // disjoint writes per range, so sharing the closure across the workers cannot race.
            nonisolated(unsafe) let shared = escapable
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = n * c / chunks, hi = n * (c + 1) / chunks
                if lo < hi { shared(lo..<hi) }
            }
        }
    }
}
