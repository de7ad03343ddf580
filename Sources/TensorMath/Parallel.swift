import CBLAS
import CLinux
import Dispatch
import Foundation

/// Thread settings for the whole module. TensorMath does all of its own parallelism: OpenBLAS runs
/// single-threaded and large sgemms are split across the cores here (`sgemmParallel`). OpenBLAS's own
/// worker threads spin-wait after each call, and on a 2-core machine that spinning starves the
/// Dispatch workers running the transforms, norms and elementwise loops between sgemms (measured: a
/// Winograd conv ran 10x slower with 2 OpenBLAS threads than with 1 plus our own split).
public enum ComputeThreads {
    /// Cores the process may use; the fan-out for every parallel loop and sgemm split. The affinity
    /// mask, not the machine's core count: ranks that `mpirun --bind-to core` pins to one core each (or
    /// a `taskset`) would otherwise each start a thread per core of the machine and oversubscribe it.
    public static let cores = usableCores(affinity: Int(dms_affinity_cpu_count()),
                                          online: ProcessInfo.processInfo.activeProcessorCount)

    /// The affinity count where the system reports one, else the online cores; at least 1.
    static func usableCores(affinity: Int, online: Int) -> Int {
        Swift.max(1, affinity > 0 ? affinity : online)
    }

    private static let configured: Bool = {
        BLASCore.configure()
        dms_blas_set_threads(1)
        #if os(Linux)
        // Kernels return fresh multi-megabyte tensors on every call. With glibc's defaults each of them is
        // a new mmap whose pages fault in one by one (a third of the time of GroupNorm + SiLU went to the
        // kernel's page-fault path); serving blocks under 64 MB from the heap and keeping up to 512 MB
        // free at its top lets freed activations be reused. Larger blocks (weights of big models) are
        // still mapped and returned to the system when freed.
        _ = glibcMallopt(-3, 64 << 20)  // M_MMAP_THRESHOLD
        _ = glibcMallopt(-1, 512 << 20)  // M_TRIM_THRESHOLD
        #endif
        return true
    }()

    /// Sets up the process the first time it is called (OpenBLAS's best core for this CPU, see `BLASCore`;
    /// OpenBLAS single-threaded; glibc's large-block policy, see above); every kernel calls it.
    @inlinable public static func ensureConfigured() { _ = isConfigured }

    @usableFromInline static var isConfigured: Bool { configured }
}

#if os(Linux)
/// glibc's `int mallopt(int param, int value)` from <malloc.h>, which Swift's Glibc module does not export.
@_silgen_name("mallopt")
private func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32
#endif

/// Splitting a loop over the cores: the one parallel-for of dmsurgery (`forRanges` for the kernels,
/// `forParts` for element-wise passes with per-part results; Parallel+Parts.swift).
public enum Parallel {
    /// Work, in floats touched, below which a loop runs on the calling thread: waking the Dispatch
    /// workers and joining them costs about what a core does to this many floats in a simple pass, so a
    /// smaller op (a 16x16 plane per channel of a small model's chunk) gains nothing from a second core.
    public static let serialWork = 1 << 15

    /// The `grain` of a loop whose iterations each touch about `work` floats: loops below `serialWork`
    /// in all run serially, larger ones give every core at least that much.
    @inlinable
    public static func grain(perIteration work: Int) -> Int { Swift.max(1, serialWork / Swift.max(1, work)) }

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
