import XCTest
@testable import TensorMath

final class TensorTests: XCTestCase {
    func testReshapeInfersOneDimension() {
        let t = Tensor(shape: [2, 3, 4], data: (0..<24).map(Float.init)).reshaped([-1, 4])
        XCTAssertEqual(t.shape, [6, 4])
        XCTAssertEqual(t.data[23], 23)
    }

    func testConcatThenSplitRoundTripsChannels() {
        let a = Tensor(shape: [2, 1, 2], data: [1, 2, 3, 4])
        let b = Tensor(shape: [2, 2, 2], data: [5, 6, 7, 8, 9, 10, 11, 12])
        let c = Tensor.concatChannels([a, b])
        XCTAssertEqual(c.shape, [2, 3, 2])
        XCTAssertEqual(c.data, [1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12])
        let parts = c.splitChannels([1, 2])
        XCTAssertEqual(parts[0], a)
        XCTAssertEqual(parts[1], b)
    }

    func testTokensRoundTripTransposesChannelsLast() {
        let x = Tensor(shape: [1, 2, 1, 3], data: [1, 2, 3, 4, 5, 6])
        let t = x.toTokens()
        XCTAssertEqual(t.shape, [1, 3, 2])
        XCTAssertEqual(t.data, [1, 4, 2, 5, 3, 6])
        XCTAssertEqual(t.fromTokens(height: 1, width: 3), x)
    }

    func testAddScaleAndProduct() {
        var a = Tensor(shape: [3], data: [1, 2, 3])
        a.add(Tensor(shape: [3], data: [1, 1, 1]), scaledBy: 2)
        XCTAssertEqual(a.data, [3, 4, 5])
        XCTAssertEqual((a * Tensor(shape: [3], data: [2, 0, -1])).data, [6, 0, -5])
        XCTAssertEqual((a - a).maxAbs(), 0)
        XCTAssertEqual((0.5 * a).data, [1.5, 2, 2.5])
    }
}
