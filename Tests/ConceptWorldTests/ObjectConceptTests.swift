import ConceptWorld
import TensorFormats
import XCTest

/// The object concept `cross`, the multi-concept worlds and the paraphrase tokens (formats/concept-world.md).
final class ObjectConceptTests: XCTestCase {
    func testStyleWorldKeepsTheOriginalPromptsTokensAndTable() {
        XCTAssertEqual(WorldConcept.style.prompts, WorldPrompt.all)
        XCTAssertEqual(WorldConcept.style.forget, WorldPrompt.forget)
        XCTAssertEqual(WorldConcept.style.retain, WorldPrompt.retain)
        XCTAssertEqual(Vocabulary.baseTokens, ["<start>", "<pad>", "red", "green", "blue", "square", "circle", "triangle",
                                               "flat", "outline", "stripes", "checker"])
        XCTAssertEqual(Vocabulary.tokens, Vocabulary.baseTokens + ["cross", "stripy", "plus"])
        XCTAssertEqual(Vocabulary.baseTable, Array(Vocabulary.table.prefix(12)))
        XCTAssertEqual(Set(Vocabulary.table).count, 15, "tokens must embed differently")
        // The object's row continues the table's stream: draw 12 * 32 + 1.
        var rng = WorldRandom(seed: Vocabulary.tableSeed)
        for _ in 0..<(12 * 32) { _ = rng.next() }
        XCTAssertEqual(Vocabulary.embedding(of: "cross")[0], Float(Int(rng.next() >> 40) - (1 << 23)) / Float(1 << 23))
    }

    func testExtendedPromptsAppendTheCrossPromptsWithStableIndices() {
        XCTAssertEqual(WorldPrompt.extended.count, 48)
        XCTAssertEqual(Array(WorldPrompt.extended.prefix(36)), WorldPrompt.all)
        for (i, p) in WorldPrompt.extended.enumerated() { XCTAssertEqual(p.index, i, p.text) }
        XCTAssertTrue(WorldPrompt.extended.suffix(12).allSatisfy { $0.shape == .cross })
        XCTAssertEqual(WorldPrompt.extended[36].text, "red cross, flat style")
    }

    func testEachConceptChoiceSplitsItsPrompts() {
        XCTAssertEqual(WorldConcept.object.forget.count, 12)
        XCTAssertTrue(WorldConcept.object.forget.allSatisfy { $0.shape == .cross })
        XCTAssertEqual(WorldConcept.object.retain.count, 36)
        XCTAssertTrue(WorldConcept.object.retain.contains { $0.style == .stripes }, "only the chosen concept leaves the retain data")
        XCTAssertEqual(WorldConcept.both.forget.count, 21)
        XCTAssertEqual(WorldConcept.both.retain.count, 27)
        XCTAssertTrue(WorldConcept.both.retain.allSatisfy { $0.shape != .cross && $0.style != .stripes })
        let p = WorldPrompt(colour: .green, shape: .cross, style: .stripes)
        XCTAssertEqual(WorldConcept.both.anchored(p), WorldPrompt(colour: .green, shape: .square, style: .flat))
        XCTAssertEqual(WorldConcept.object.anchored(p), WorldPrompt(colour: .green, shape: .square, style: .stripes))
        XCTAssertEqual(WorldConcept.style.anchored(p), WorldPrompt(colour: .green, shape: .cross, style: .flat))
    }

    func testObjectWorldFilesHoldTheRightItems() {
        let world = WorldDataset(seed: 0, perPrompt: 2, heldoutPerPrompt: 1, concept: .both)
        XCTAssertEqual(world.all.tensors[0].shape, [96, 3, 16, 16])
        let retain = world.retain
        XCTAssertEqual(retain.tensors[0].shape, [54, 3, 16, 16])
        XCTAssertFalse(retain.prompts.contains { $0.contains("cross") || $0.contains("stripes") })
        let forget = world.forget
        XCTAssertEqual(forget.tensors.map(\.name), ["cond", "uncond", "anchor"])
        XCTAssertEqual(forget.tensors[0].shape, [21, 4, 32])
        let anchors = forget.tensors[2].values
        let square = Vocabulary.embedding(of: "square"), flat = Vocabulary.embedding(of: "flat")
        for row in 0..<21 {
            XCTAssertNotEqual(Array(anchors[(row * 4 + 2) * 32..<(row * 4 + 3) * 32]), Vocabulary.embedding(of: "cross"))
            XCTAssertNotEqual(Array(anchors[(row * 4 + 3) * 32..<(row * 4 + 4) * 32]), Vocabulary.embedding(of: "stripes"))
        }
        XCTAssertEqual(Array(anchors[(20 * 4 + 2) * 32..<(20 * 4 + 3) * 32]), square, "the last forget prompt is a cross")
        XCTAssertEqual(Array(anchors[3 * 32..<4 * 32]), flat, "the first forget prompt is red square, stripes")
        // The retain renders are the all file's renders of the same prompts.
        let all = world.all
        let retainFirst = Array(retain.tensors[0].values.prefix(768)), allFirst = Array(all.tensors[0].values.prefix(768))
        XCTAssertEqual(retainFirst, allFirst)
    }

    func testParaphraseTokensLieNearTheirConceptsAndInNoDataFile() {
        for p in Paraphrase.all {
            XCTAssertGreaterThan(p.cosine, 0.9, p.token)
            XCTAssertLessThan(p.cosine, 0.99, p.token)
            for other in Vocabulary.tokens where other != p.token && other != p.concept.token {
                let e = Vocabulary.embedding(of: other), q = Vocabulary.embedding(of: p.token)
                let cos = zip(e, q).reduce(0) { $0 + $1.0 * $1.1 } / (e.reduce(0) { $0 + $1 * $1 }.squareRoot() * q.reduce(0) { $0 + $1 * $1 }.squareRoot())
                XCTAssertLessThan(cos, 0.5, "\(p.token) is near \(other)")
            }
        }
        for concept in WorldConcept.allCases {
            let world = WorldDataset(seed: 0, perPrompt: 1, heldoutPerPrompt: 1, concept: concept)
            for file in [world.all, world.retain, world.forget, world.heldout] {
                for tensor in file.tensors where tensor.name != "x0" {
                    for row in stride(from: 0, to: tensor.values.count, by: 32) {
                        let v = Array(tensor.values[row..<row + 32])
                        XCTAssertFalse(Paraphrase.all.contains { Vocabulary.embedding(of: $0.token) == v }, "\(concept) \(tensor.name)")
                    }
                }
            }
        }
    }

    func testCrossIsDrawnAsAPlusAndReadAsTheCross() {
        for colour in WorldColour.allCases {
            for style in WorldStyle.allCases {
                let p = WorldPrompt(colour: colour, shape: .cross, style: style)
                let image = Renderer.render(p, seed: 2, split: .validation, index: 1)
                XCTAssertEqual(Detector.detect(image, shapes: WorldShape.allCases), Detection(colour: colour, shape: .cross, style: style), p.text)
                XCTAssertNotEqual(Detector.detect(image).shape, .cross, "the original world's detector never answers cross")
            }
        }
        // Corners of the box and the diagonal quarters are background; the centre and the arm tips are not.
        let p = WorldPrompt(colour: .red, shape: .cross, style: .flat)
        var rng = WorldRandom(seed: 9)
        let j = Renderer.Jitter(&rng)
        let image = Renderer.render(p, jitter: j)
        func lit(_ u: Int, _ v: Int) -> Bool { image[(j.y0 + v) * 16 + j.x0 + u] > 0.5 }
        let s = j.size
        XCTAssertTrue(lit(s / 2, 0) && lit(0, s / 2) && lit(s - 1, s / 2) && lit(s / 2, s - 1) && lit(s / 2, s / 2))
        XCTAssertFalse(lit(0, 0) || lit(1, 1) || lit(2, 2) || lit(s - 2, s - 2) || lit(1, s - 2))
    }

    /// Blur is the weak spot (formats/concept-world.md): 9-px striped crosses lose their one-row bottom
    /// tip and read as triangles, blurred textured discs lose edge rows and read as crosses, blurred
    /// cross outlines fill in; the bound there is 90%, not the original world's 93%.
    func testObjectWorldDetectorsReadCleanNoisyAndBlurredRenders() {
        for (degradation, bound) in [(Degradation.none, 0.99), (Degradation(noise: 0.2), 0.95), (Degradation(blur: true), 0.90)] {
            let a = Detector.validate(perPrompt: 20, degradation: degradation, world: .both)
            print("object-world detector accuracy, noise \(degradation.noise) blur \(degradation.blur): colour \(a.colour) shape \(a.shape) style \(a.style) all \(a.all)")
            XCTAssertEqual(a.images, 960)
            XCTAssertGreaterThanOrEqual(a.minimum, bound, "noise \(degradation.noise) blur \(degradation.blur)")
        }
    }
}
