import ConceptWorld
import XCTest

final class WorldDatasetTests: XCTestCase {
    let world = WorldDataset(seed: 7, perPrompt: 3, heldoutPerPrompt: 2)

    func testRetainNeverHoldsTheForgetStyle() {
        let retain = world.retain
        XCTAssertFalse(retain.prompts.contains { $0.contains(WorldStyle.forget.rawValue) })
        let stripes = Vocabulary.embedding(of: WorldStyle.forget.rawValue)
        let cond = retain.tensors[1]
        XCTAssertEqual(cond.name, "cond")
        let rowSize = WorldSize.tokens * WorldSize.embeddingDim
        for row in 0..<cond.shape[0] {
            let base = row * rowSize
            for token in 0..<WorldSize.tokens {
                let e = Array(cond.values[base + token * 32..<base + token * 32 + 32])
                XCTAssertNotEqual(e, stripes, "row \(row) token \(token)")
            }
        }
        XCTAssertEqual(cond.shape, [27 * 3, 4, 32])
    }

    func testRetainIsAllWithoutTheForgetItems() {
        let all = world.all, retain = world.retain
        let keep = all.prompts.indices.filter { !all.prompts[$0].contains(WorldStyle.forget.rawValue) }
        let pixels = WorldSize.pixels
        XCTAssertEqual(keep.count, retain.prompts.count)
        for (r, a) in keep.enumerated() {
            XCTAssertEqual(Array(all.tensors[0].values[a * pixels..<(a + 1) * pixels]),
                           Array(retain.tensors[0].values[r * pixels..<(r + 1) * pixels]))
        }
    }

    func testForgetFileHasAnchorsAndNoImages() {
        let forget = world.forget
        XCTAssertEqual(forget.tensors.map(\.name), ["cond", "uncond", "anchor"])
        XCTAssertEqual(forget.prompts.count, 9)
        let anchor = forget.tensors[2].values
        let flat = Vocabulary.embedding(of: WorldStyle.anchor.rawValue)
        for row in 0..<9 {
            XCTAssertEqual(Array(anchor[row * 128 + 96..<row * 128 + 128]), flat)
            XCTAssertEqual(Array(forget.tensors[0].values[row * 128..<row * 128 + 96]), Array(anchor[row * 128..<row * 128 + 96]))
        }
    }

    func testHeldoutComesFromADisjointStream() {
        let heldout = world.heldout, retain = world.retain
        XCTAssertEqual(heldout.tensors[0].shape, [27 * 2, 3, 16, 16])
        let pixels = WorldSize.pixels
        let train = Set((0..<retain.prompts.count).map { Array(retain.tensors[0].values[$0 * pixels..<($0 + 1) * pixels]) })
        let overlap = (0..<heldout.prompts.count).filter { train.contains(Array(heldout.tensors[0].values[$0 * pixels..<($0 + 1) * pixels])) }
        // Renders are drawn from a finite jitter space, so an identical image can recur by chance; not systematically.
        XCTAssertLessThan(overlap.count, heldout.prompts.count / 4)
    }
}
