import ConceptWorld
import XCTest

final class RendererTests: XCTestCase {
    func testSameSeedGivesSameRender() {
        let p = WorldPrompt(colour: .red, shape: .circle, style: .stripes)
        XCTAssertEqual(Renderer.render(p, seed: 3, split: .train, index: 5), Renderer.render(p, seed: 3, split: .train, index: 5))
        XCTAssertNotEqual(Renderer.render(p, seed: 3, split: .train, index: 5), Renderer.render(p, seed: 3, split: .heldout, index: 5))
    }
}
