import XCTest
@testable import TensorMath

/// How many threads the engine fans out to, and which loops stay on the calling thread.
final class ParallelTests: XCTestCase {
    /// The affinity mask decides where the system reports one (a rank pinned to 1 core of 16 uses 1).
    func testCoresFollowTheAffinityMaskElseTheOnlineCount() {
        XCTAssertEqual(ComputeThreads.usableCores(affinity: 1, online: 16), 1)
        XCTAssertEqual(ComputeThreads.usableCores(affinity: 4, online: 16), 4)
        XCTAssertEqual(ComputeThreads.usableCores(affinity: 0, online: 16), 16, "no mask reported: the online cores")
        XCTAssertEqual(ComputeThreads.usableCores(affinity: 0, online: 0), 1)
        XCTAssertGreaterThanOrEqual(ComputeThreads.cores, 1)
    }

    /// Loops smaller than `serialWork` in all run serially: `forRanges` calls the body once with the
    /// whole range; larger ones get `serialWork` per core at least.
    func testSmallLoopsRunOnTheCallingThreadInOneRange() {
        XCTAssertEqual(Parallel.grain(perIteration: 256), Parallel.serialWork / 256)
        XCTAssertEqual(Parallel.grain(perIteration: Parallel.serialWork * 4), 1)
        XCTAssertEqual(Parallel.grain(perIteration: 0), Parallel.serialWork)
        let planes = Parallel.serialWork / 256 - 1
        var calls: [Range<Int>] = []
        Parallel.forRanges(planes, grain: Parallel.grain(perIteration: 256)) { calls.append($0) }
        XCTAssertEqual(calls, [0..<planes])
    }
}
