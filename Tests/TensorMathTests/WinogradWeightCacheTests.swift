import XCTest
@testable import TensorMath

/// `WinogradWeightCache`: cached weight transforms give the uncached results bit for bit, are reused for
/// an unchanged weight, and are never served for a weight that changed after it was cached.
final class WinogradWeightCacheTests: XCTestCase {
    private func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = SeededRandom(seed)
        return rng.tensor(shape)
    }

    /// F(4x4) (16x16 maps) and F(2x2) (4x4 maps at batch 8), each forward and input-gradient backward.
    private let cases: [(batch: Int, size: Int, algorithm: ConvAlgorithm)] = [
        (2, 16, .winogradF4), (8, 4, .winogradF2),
    ]

    func testCachedForwardAndInputGradientEqualUncachedBitForBit() {
        for (i, c) in cases.enumerated() {
            let x = random([c.batch, 5, c.size, c.size], seed: UInt64(10 + i))
            let w = random([7, 5, 3, 3], seed: UInt64(20 + i))
            let b = random([7], seed: UInt64(30 + i))
            let dy = random([c.batch, 7, c.size, c.size], seed: UInt64(40 + i))
            let plain = NN.conv2d(x, weight: w, bias: b, stride: 1, padding: 1, algorithm: c.algorithm, imagesPerChunk: nil)
            let plainDx = NN.conv2dBackward(dy, input: x, weight: w, hasBias: true, stride: 1, padding: 1,
                                            needs: .input).input!
            let cache = WinogradWeightCache()
            NN.withWinogradWeightCache(cache) {
                for _ in 0..<2 {
                    let y = NN.conv2d(x, weight: w, bias: b, stride: 1, padding: 1, algorithm: c.algorithm,
                                      imagesPerChunk: nil)
                    XCTAssertEqual(y, plain, "\(c.algorithm) forward")
                }
                let dx = NN.conv2dBackward(dy, input: x, weight: w, hasBias: true, stride: 1, padding: 1,
                                           needs: .input).input!
                XCTAssertEqual(dx, plainDx, "\(c.algorithm) input gradient")
            }
            XCTAssertEqual(cache.entryCount, 1, "one weight, one plan: transformed once and reused")
            let positions = c.algorithm == .winogradF4 ? 36 : 16
            XCTAssertEqual(cache.storedBytes, positions * (7 * 5 + 16) * 4)
        }
    }

    func testChangedWeightIsTransformedAgainNotServedStale() {
        let x = random([2, 4, 16, 16], seed: 1)
        var w = random([6, 4, 3, 3], seed: 2)
        let cache = WinogradWeightCache()
        NN.withWinogradWeightCache(cache) {
            _ = NN.conv2d(x, weight: w, bias: nil, padding: 1)
            // An in-place update, as an optimizer step makes it.
            w.add(random([6, 4, 3, 3], seed: 3), scaledBy: 0.5)
            let y = NN.conv2d(x, weight: w, bias: nil, padding: 1)
            let expected = NN.withWinogradWeightCache(nil) { NN.conv2d(x, weight: w, bias: nil, padding: 1) }
            XCTAssertEqual(y, expected)
        }
        XCTAssertEqual(cache.entryCount, 2)
    }

    func testBudgetBoundsTheCacheAndLaterWeightsStillCompute() {
        let x = random([2, 4, 16, 16], seed: 4)
        let w1 = random([6, 4, 3, 3], seed: 5), w2 = random([6, 4, 3, 3], seed: 6)
        let oneEntry = 36 * (6 * 4 + 16) * 4
        let cache = WinogradWeightCache(budgetBytes: oneEntry)
        let expected2 = NN.conv2d(x, weight: w2, bias: nil, padding: 1)
        NN.withWinogradWeightCache(cache) {
            _ = NN.conv2d(x, weight: w1, bias: nil, padding: 1)
            XCTAssertEqual(NN.conv2d(x, weight: w2, bias: nil, padding: 1), expected2)
        }
        XCTAssertEqual(cache.entryCount, 1)
        XCTAssertEqual(cache.storedBytes, oneEntry)
    }
}
