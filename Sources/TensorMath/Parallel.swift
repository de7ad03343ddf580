import CBLAS
import Dispatch
import Foundation

/// Thread settings for the whole module: OpenBLAS threads for sgemm, and the fan-out used for the
/// non-BLAS loops (im2col, norms, elementwise, softmax).
public enum ComputeThreads {
    /// Cores the process may use; the fan-out for non-BLAS loops.
    public static let cores = Swift.max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Sets OpenBLAS's thread count (`openblas_set_num_threads`). Kernels call `ensureConfigured()`,
    /// which sets it to `cores` once; call this afterwards to override.
    public static func setBLASThreads(_ n: Int) { dms_blas_set_threads(Int32(n)) }

    private static let configured: Bool = {
        dms_blas_set_threads(Int32(cores))
        return true
    }()

    /// Sets OpenBLAS's thread count to `cores` the first time it is called.
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
