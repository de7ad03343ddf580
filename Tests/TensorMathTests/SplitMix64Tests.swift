import TensorMath
import XCTest

final class SplitMix64Tests: XCTestCase {
    /// The reference sequence of SplitMix64 from seed 1234567 (Vigna's splitmix64.c).
    func testMatchesTheReferenceSequence() {
        var g = SplitMix64(state: 1_234_567)
        XCTAssertEqual((0..<5).map { _ in g.next() },
                       [6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423,
                        4_593_380_528_125_082_431, 16_408_922_859_458_223_821])
    }
}
