import ConceptWorld
import XCTest

/// The detectors are only trusted because of these numbers (formats/concept-world.md, Validation).
final class DetectorTests: XCTestCase {
    private func check(_ degradation: Degradation, atLeast bound: Double, file: StaticString = #filePath, line: UInt = #line) {
        let a = Detector.validate(perPrompt: 20, degradation: degradation)
        print("detector accuracy, noise \(degradation.noise) blur \(degradation.blur): colour \(a.colour) shape \(a.shape) style \(a.style) all \(a.all)")
        XCTAssertEqual(a.images, 720, file: file, line: line)
        XCTAssertGreaterThanOrEqual(a.colour, bound, "colour", file: file, line: line)
        XCTAssertGreaterThanOrEqual(a.shape, bound, "shape", file: file, line: line)
        XCTAssertGreaterThanOrEqual(a.style, bound, "style", file: file, line: line)
    }

    func testDetectorsReadCleanRenders() { check(.none, atLeast: 0.99) }

    func testDetectorsTolerateNoise() { check(Degradation(noise: 0.2), atLeast: 0.95) }

    func testDetectorsTolerateBlur() { check(Degradation(blur: true), atLeast: 0.93) }

    func testBlankAndGreyImagesShowNothing() {
        XCTAssertEqual(Detector.detect([Float](repeating: -0.5, count: WorldSize.pixels)), Detection())
        XCTAssertEqual(Detector.detect([Float](repeating: 0, count: WorldSize.pixels)), Detection())
    }

    func testEachStyleIsToldApartOnOnePrompt() {
        for style in WorldStyle.allCases {
            let p = WorldPrompt(colour: .blue, shape: .square, style: style)
            XCTAssertEqual(Detector.detect(Renderer.render(p, seed: 1, split: .validation, index: 0)), Detection(colour: .blue, shape: .square, style: style))
        }
    }
}
