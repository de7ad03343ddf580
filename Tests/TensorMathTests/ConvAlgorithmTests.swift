import XCTest
@testable import TensorMath

/// The automatic convolution algorithm counts the per-call Winograd weight transform.
final class ConvAlgorithmTests: XCTestCase {
    private func resolve(batch: Int, channels: (Int, Int), size: Int, cached: Bool = false) -> ConvAlgorithm {
        let g = ConvGeometry(input: [batch, channels.0, size, size], weight: [channels.1, channels.0, 3, 3],
                             stride: 1, padding: 1, paddingEnd: nil)
        return ConvAlgorithm.automatic.resolved(for: g, paddingEnd: nil, cachedTransform: { _ in cached })
    }

    func testSmallTransformsKeepWinograd() {
        XCTAssertEqual(resolve(batch: 8, channels: (128, 128), size: 32), .winogradF4)
        XCTAssertEqual(resolve(batch: 8, channels: (256, 256), size: 8), .winogradF2)
        XCTAssertEqual(resolve(batch: 1, channels: (640, 640), size: 32), .winogradF4)
    }

    func testFaultingTransformWithFewPixelsTakesIm2colUnlessCached() {
        // SD-1.5 at batch 1: U would be 236 MB (F(4x4)) / 105 MB (F(2x2)) for 256 output pixels.
        XCTAssertEqual(resolve(batch: 1, channels: (1280, 1280), size: 16), .im2col)
        XCTAssertEqual(resolve(batch: 1, channels: (1280, 1280), size: 16, cached: true), .winogradF4)
        // Enough pixels for F(2x2) but not F(4x4): 1024 >= 640, < 1440.
        XCTAssertEqual(resolve(batch: 1, channels: (1920, 640), size: 32), .winogradF2)
        XCTAssertEqual(resolve(batch: 2, channels: (1280, 1280), size: 32), .winogradF4)
    }
}
