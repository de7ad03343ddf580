import ConceptWorld
import Foundation
import TensorFormats
import Workflows
import XCTest

/// `world` in-process: its files, their shapes, and the same bytes for the same seed.
final class WorldWorkflowTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dms-world-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func testWorldWritesItsFiveFilesWithOneRenderPerPrompt() throws {
        var settings = WorldSettings(dir: directory.appendingPathComponent("a").path)
        settings.perPrompt = 1
        settings.heldoutPerPrompt = 1
        settings.quiet = true
        let written = try WorldWorkflow.run(settings)
        XCTAssertEqual(written.map { URL(fileURLWithPath: $0).lastPathComponent },
                       ["all.safetensors", "retain.safetensors", "forget.safetensors", "heldout.safetensors", "world.json"])
        let all = try Checkpoint.open(written[0])
        XCTAssertEqual(try XCTUnwrap(all.entries.first { $0.name == "x0" }).shape, [WorldPrompt.all.count, 3, 16, 16])
        XCTAssertEqual(try XCTUnwrap(all.entries.first { $0.name == "cond" }).shape, [WorldPrompt.all.count, 4, 32])
        let forget = try Checkpoint.open(written[2])
        XCTAssertEqual(try XCTUnwrap(forget.entries.first { $0.name == "anchor" }).shape, [WorldPrompt.forget.count, 4, 32])
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: written[4]))) as? [String: Any])
    }

    func testTheSameSeedGivesTheSameBytesAndAnotherSeedOthers() throws {
        func render(_ name: String, seed: UInt64) throws -> Data {
            var settings = WorldSettings(dir: directory.appendingPathComponent(name).path)
            settings.perPrompt = 1
            settings.heldoutPerPrompt = 1
            settings.seed = seed
            settings.quiet = true
            return try Data(contentsOf: URL(fileURLWithPath: try WorldWorkflow.run(settings)[0]))
        }
        XCTAssertEqual(try render("a", seed: 3), try render("b", seed: 3))
        XCTAssertNotEqual(try render("c", seed: 3), try render("d", seed: 4))
    }

    func testTheObjectWorldWritesItsConceptsFiles() throws {
        var settings = WorldSettings(dir: directory.appendingPathComponent("o").path)
        settings.perPrompt = 1
        settings.heldoutPerPrompt = 1
        settings.concept = .object
        settings.quiet = true
        let written = try WorldWorkflow.run(settings)
        XCTAssertEqual(try XCTUnwrap(try Checkpoint.open(written[0]).entries.first { $0.name == "x0" }).shape, [48, 3, 16, 16])
        XCTAssertEqual(try XCTUnwrap(try Checkpoint.open(written[1]).entries.first { $0.name == "x0" }).shape, [36, 3, 16, 16])
        XCTAssertEqual(try XCTUnwrap(try Checkpoint.open(written[2]).entries.first { $0.name == "cond" }).shape, [12, 4, 32])
        let lines = WorldWorkflow.promptList(.object).split(separator: "\n")
        XCTAssertEqual(lines.count, 48)
        XCTAssertTrue(lines.filter { $0.contains("\tforget\t") }.allSatisfy { $0.contains(" cross, ") })
    }

    func testThePromptListHasOneLinePerPrompt() {
        let lines = WorldWorkflow.promptList.split(separator: "\n")
        XCTAssertEqual(lines.count, WorldPrompt.all.count)
        XCTAssertEqual(lines.filter { $0.split(separator: "\t")[1] == "forget" }.count, WorldPrompt.forget.count)
    }
}
