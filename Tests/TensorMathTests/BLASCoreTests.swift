import CBLAS
import XCTest
@testable import TensorMath

/// The start-up correction of OpenBLAS's core: which core each CPU gets, that a user's
/// OPENBLAS_CORETYPE is never overridden, and that switching a fallen-back library really changes its
/// kernels while sgemm results stay the same.
final class BLASCoreTests: XCTestCase {
    func testPreferredCoreFollowsTheWidestVectorUnit() {
        let avx2: CPUFeatures = [.x86, .sse3, .avx2Set]
        XCTAssertEqual(BLASCore.preferredCore(for: [.x86, .avx512Set, .avx512bf16]), "Cooperlake")
        XCTAssertEqual(BLASCore.preferredCore(for: [.x86, .avx512Set]), "SkylakeX")
        XCTAssertEqual(BLASCore.preferredCore(for: avx2), "Haswell")
        XCTAssertEqual(BLASCore.preferredCore(for: avx2.union(.amd)), "Zen")
        // AVX-512F alone (Knights Landing-like, no BW/VL) is not enough for SkylakeX's kernels.
        XCTAssertEqual(BLASCore.preferredCore(for: avx2.union(.avx512f)), "Haswell")
        XCTAssertNil(BLASCore.preferredCore(for: [.x86, .sse3, .avx]))
        XCTAssertNil(BLASCore.preferredCore(for: []), "not x86: the library's choice stands")
    }

    func testOnlyLesserCoresAreReplaced() {
        XCTAssertLessThan(BLASCore.rank("Prescott"), BLASCore.rank("Haswell"))
        XCTAssertLessThan(BLASCore.rank("Haswell"), BLASCore.rank("SkylakeX"))
        XCTAssertLessThan(BLASCore.rank("SkylakeX"), BLASCore.rank("Cooperlake"))
        XCTAssertEqual(BLASCore.rank("Zen"), BLASCore.rank("Haswell"))
        XCTAssertLessThan(BLASCore.rank("SomeFutureFallback"), BLASCore.rank("Haswell"))
    }

    func testAFallenBackLibraryIsSwitchedToTheBestCoreAndSgemmAgrees() throws {
        _ = BLASCore.current
        let original = String(cString: dms_blas_corename())
        guard BLASCore.select("Prescott"), String(cString: dms_blas_corename()) == "Prescott" else {
            throw XCTSkip("OpenBLAS here cannot switch cores (not a DYNAMIC_ARCH build)")
        }
        defer { BLASCore.select(original) }
        let userVariable = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"]
        var rng = SeededRandom(3)
        let a = rng.tensor([67, 129]), b = rng.tensor([45, 129])
        let slow = NN.linear(a, weight: b, bias: nil)

        // The user's variable wins: nothing changes even though Prescott is a fallback.
        let kept = BLASCore.correct(environment: ["OPENBLAS_CORETYPE": "Prescott"], features: .host)
        XCTAssertEqual(kept.origin, .user)
        XCTAssertEqual(String(cString: dms_blas_corename()), "Prescott")

        let fixed = BLASCore.correct(environment: [:], features: .host)
        guard let best = BLASCore.preferredCore(for: .host) else { throw XCTSkip("no AVX2 here") }
        XCTAssertEqual(fixed, BLASCore(active: best, origin: .engine, replaced: "Prescott"))
        XCTAssertEqual(String(cString: dms_blas_corename()), best)
        XCTAssertEqual(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], userVariable,
                       "the variable set for the switch is restored afterwards")
        let fast = NN.linear(a, weight: b, bias: nil)
        XCTAssertLessThanOrEqual(relativeMaxError(fast, slow), 1e-5)

        // Already the best: left alone.
        XCTAssertEqual(BLASCore.correct(environment: [:], features: .host).origin, .library)
    }
}
