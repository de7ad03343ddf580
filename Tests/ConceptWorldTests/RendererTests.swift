import ConceptWorld
import XCTest

final class RendererTests: XCTestCase {
    /// A red striped circle with a chosen jitter, against the picture the geometry in Renderer's
    /// comments describes (a 10 px disc at (3, 4), every other pair of rows painted) and the documented
    /// levels: background (grey + tint) / 20, the lit channel (18 - shade) / 20, the others (dark - 16) / 20.
    func testAStripedCircleIsTheDocumentedPicture() {
        let picture = [
            "................", "................", "................", "................",
            "......####......", "....########....", "................", "................",
            "...##########...", "...##########...", "................", "................",
            "....########....", "......####......", "................", "................",
        ]
        var rng = WorldRandom(seed: 0)
        var j = Renderer.Jitter(&rng)
        (j.size, j.x0, j.y0, j.grey, j.tint, j.shade, j.dark) = (10, 3, 4, -10, [1, 0, -1], 2, [0, 1, 2])
        let image = Renderer.render(WorldPrompt(colour: .red, shape: .circle, style: .stripes), jitter: j)
        let background: [Float] = [-9, -10, -11].map { $0 / 20 }, colour: [Float] = [16, -15, -14].map { $0 / 20 }
        for c in 0..<3 {
            let drawn = (0..<16).map { y in
                String((0..<16).map { x -> Character in
                    let value = image[(c * 16 + y) * 16 + x]
                    return value == colour[c] ? "#" : value == background[c] ? "." : "?"
                })
            }
            XCTAssertEqual(drawn, picture, "channel \(c)")
        }
    }

    func testStreamsDiffer() {
        let p = WorldPrompt(colour: .red, shape: .circle, style: .stripes)
        XCTAssertNotEqual(Renderer.render(p, seed: 3, split: .train, index: 5), Renderer.render(p, seed: 3, split: .heldout, index: 5))
        XCTAssertNotEqual(Renderer.render(p, seed: 3, split: .train, index: 5), Renderer.render(p, seed: 4, split: .train, index: 5))
    }

    func testRendersStayInRangeAndShowTheColour() {
        for p in WorldPrompt.all {
            let image = Renderer.render(p, seed: 0, split: .train, index: 0)
            XCTAssertEqual(image.count, 3 * 16 * 16)
            XCTAssertTrue(image.allSatisfy { $0 >= -1 && $0 <= 1 }, p.text)
            let lit = (0..<256).filter { image[p.colour.channel * 256 + $0] > 0.5 }.count
            XCTAssertGreaterThan(lit, 10, p.text)
        }
    }

    func testEmbeddingTableIsTheDocumentedGenerator() {
        // First SplitMix64 draw from 0x646D73776F726C64, top 24 bits, mapped to [-1, 1).
        var z: UInt64 = 0x646D_7377_6F72_6C64 &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        XCTAssertEqual(Vocabulary.table[0][0], Float(Int(z >> 40) - (1 << 23)) / Float(1 << 23))
        // The original world's 12 rows come first and are unchanged by the extension (the object token
        // and the paraphrase tokens are appended), so every model trained before it reads the same table.
        XCTAssertEqual(Vocabulary.baseTable.count, 12)
        XCTAssertEqual(Vocabulary.table.count, Vocabulary.tokens.count)
        XCTAssertEqual(Vocabulary.table.count, 12 + 1 + Paraphrase.all.count)
        XCTAssertTrue(Vocabulary.table.allSatisfy { $0.count == 32 && $0.allSatisfy(\.isFinite) })
        // Drawn rows (the base tokens and the object) are uniform in [-1, 1); paraphrase rows are their
        // concept's row plus noise, so only they may leave that range.
        XCTAssertTrue(Vocabulary.table.prefix(13).allSatisfy { $0.allSatisfy { $0 >= -1 && $0 < 1 } })
        XCTAssertEqual(Set(Vocabulary.table.map { $0 }).count, Vocabulary.table.count, "tokens must embed differently")
    }

    func testPromptIndexMatchesOrder() {
        for (i, p) in WorldPrompt.all.enumerated() { XCTAssertEqual(p.index, i) }
        XCTAssertEqual(WorldPrompt.all.count, 36)
        XCTAssertEqual(WorldPrompt.forget.count, 9)
    }
}
