import CBLAS
import Foundation

/// Which OpenBLAS kernel set ("core") runs the sgemms, and the start-up correction when the library
/// picked a lesser one than the CPU supports.
///
/// A DYNAMIC_ARCH OpenBLAS (Debian's, Ubuntu's) chooses its core in a load-time constructor from a table
/// of CPU models; a CPU newer than the library (e.g. Xeon family 6 model 207 under 0.3.21) falls back to
/// the SSE3 "Prescott" kernels, a quarter of the machine. The engine compares the active core with what
/// cpuid reports and re-runs the library's own selection with the right name (see
/// `dms_blas_select_core`), unless the user set `OPENBLAS_CORETYPE`, which always wins.
public struct BLASCore: Sendable, Equatable {
    /// How the active core came about.
    public enum Origin: String, Sendable {
        /// The library's own choice at load time, kept (it was already the best for this CPU).
        case library
        /// The user's `OPENBLAS_CORETYPE`, respected as is.
        case user
        /// Replaced by the engine at start: the library had fallen back to `replaced`.
        case engine
        /// The library's choice is lesser, but it cannot be changed (not a DYNAMIC_ARCH build).
        case libraryFixed = "library-fixed"
    }

    /// The core running now, as OpenBLAS names it ("Cooperlake", "Haswell", ...); "" if unknown.
    public let active: String
    public let origin: Origin
    /// The library's load-time choice when the engine replaced it.
    public let replaced: String?

    /// The core in use, corrected on first call (every kernel triggers it through
    /// `ComputeThreads.ensureConfigured`, so commands that never compute pay nothing).
    public static var current: BLASCore {
        ComputeThreads.ensureConfigured()
        return selected
    }

    nonisolated(unsafe) static var selected = BLASCore(active: "", origin: .library, replaced: nil)

    /// Runs once, before the first BLAS call (from `ComputeThreads`' one-time setup).
    static func configure() {
        selected = correct(environment: ProcessInfo.processInfo.environment, features: .host)
    }

    /// Compares the active core with the best one for `features` and switches when it is lesser.
    /// Only safe while no BLAS call runs (start-up, or a test that owns the process).
    static func correct(environment: [String: String], features: CPUFeatures) -> BLASCore {
        let loaded = String(cString: dms_blas_corename())
        if let user = environment["OPENBLAS_CORETYPE"], !user.isEmpty {
            return BLASCore(active: loaded, origin: .user, replaced: nil)
        }
        guard let best = preferredCore(for: features), rank(loaded) < rank(best) else {
            return BLASCore(active: loaded, origin: .library, replaced: nil)
        }
        guard select(best) else { return BLASCore(active: loaded, origin: .libraryFixed, replaced: nil) }
        let now = String(cString: dms_blas_corename())
        return now == loaded
            ? BLASCore(active: now, origin: .libraryFixed, replaced: nil)
            : BLASCore(active: now, origin: .engine, replaced: loaded)
    }

    /// Switches OpenBLAS to the named core; false when the library cannot switch. Keeps OpenBLAS
    /// single-threaded (TensorMath splits sgemms itself).
    @discardableResult
    static func select(_ core: String) -> Bool {
        let ok = dms_blas_select_core(core) == 0
        dms_blas_set_threads(1)
        return ok
    }

    /// OpenBLAS 0.3.21's best x86-64 core for these features, or nil where the library's choice stands
    /// (below AVX2, or not x86). AVX-512 with BF16 is Cooperlake (its sgemm is SkylakeX's, the BF16
    /// kernels come on top), AVX-512 Skylake-SP subset SkylakeX, AVX2+FMA Zen on AMD and Haswell elsewhere.
    public static func preferredCore(for features: CPUFeatures) -> String? {
        guard features.contains(.x86) else { return nil }
        if features.isSuperset(of: CPUFeatures.avx512Set) {
            return features.contains(.avx512bf16) ? "Cooperlake" : "SkylakeX"
        }
        if features.isSuperset(of: CPUFeatures.avx2Set) { return features.contains(.amd) ? "Zen" : "Haswell" }
        return nil
    }

    /// Orders OpenBLAS x86 cores by the vector width of their sgemm: AVX-512 with BF16 > AVX-512 > AVX2 >
    /// AVX > the SSE cores. Unknown names rank lowest, so a fallback is always corrected.
    public static func rank(_ core: String) -> Int {
        switch core.lowercased() {
        case "cooperlake", "sapphirerapids": return 5
        case "skylakex": return 4
        case "haswell", "zen": return 3
        case "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator": return 2
        case "": return 0
        default: return 1
        }
    }
}
