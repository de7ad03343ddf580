import ConceptWorld
import XCTest

final class DetectorTests: XCTestCase {
    func testPrintAccuracies() {
        for (name, d) in [("clean", Degradation.none), ("noise0.1", Degradation(noise: 0.1)), ("noise0.2", Degradation(noise: 0.2)),
                          ("blur", Degradation(blur: true)), ("blur+noise0.1", Degradation(noise: 0.1, blur: true)), ("blur+noise0.2", Degradation(noise: 0.2, blur: true))] {
            let a = Detector.validate(perPrompt: 20, degradation: d)
            print("ACC", name, a.colour, a.shape, a.style, a.all)
        }
    }
}
