import Foundation
import XCTest

/// The README's sentences about the trade-off fronts and the convergence curves are made by
/// `scripts/fronts_report.py` from the committed runs (fixtures/fronts/CONCEPT/fronts.json and
/// convergence.json): regenerated here, they must appear in README.md word for word, and a changed
/// number in the data must make the check fail.
final class FrontsReportTests: XCTestCase {
    private var fronts: [String] {
        let root = CLI.repository.appendingPathComponent("fixtures/fronts")
        let concepts = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return concepts.sorted().map { root.appendingPathComponent($0).appendingPathComponent("fronts.json").path }
            .filter { FileManager.default.fileExists(atPath: $0) }
    }

    func testTheStyleFrontsAreCommitted() {
        XCTAssertTrue(fronts.contains { $0.hasSuffix("fixtures/fronts/style/fronts.json") }, "\(fronts)")
    }

    func testTheReadmeParagraphsAreTheOnesTheCommittedFrontsGive() throws {
        for file in fronts {
            let result = try CLI.shell("python3 scripts/fronts_report.py '\(file)' --check README.md")
            XCTAssertEqual(result.status, 0, "\(file): \(result.stderr)")
        }
    }

    func testTheCommittedFrontsFollowTheSchema() throws {
        if try CLI.shell("python3 -c 'import jsonschema'").status != 0 { throw XCTSkip("jsonschema is not installed (fixtures/requirements.txt)") }
        for file in fronts {
            let result = try CLI.shell("""
                python3 -c 'import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open("formats/fronts.schema.json")))' '\(file)'
                """)
            XCTAssertEqual(result.status, 0, "\(file): \(result.stderr)")
        }
    }

    func testAChangedForgetRateMakesTheCheckFail() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for file in fronts {
            let copy = directory.appendingPathComponent("fronts.json").path
            // Every point of the bilevel interleaved method forgets 3 points less: its best forget rate moves.
            let result = try CLI.shell("""
                python3 -c 'import json, sys
                f = json.load(open(sys.argv[1]))
                for p in f["points"]:
                    if p["method"] == "bilevel_interleaved": p["forget_rate"] = min(1, p["forget_rate"] + 0.03)
                json.dump(f, open(sys.argv[2], "w"))' '\(file)' '\(copy)' && python3 scripts/fronts_report.py '\(copy)' --check README.md
                """)
            XCTAssertEqual(result.status, 1, "\(file): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("is not the one"), result.stderr)
        }
    }
}
