import Foundation
import XCTest

/// The README's sentences about the trade-off fronts, the convergence curves and the attacks on the
/// chosen points are made by `scripts/fronts_report.py` from the committed runs
/// (fixtures/fronts/CONCEPT/fronts.json, convergence.json, robustness.json): regenerated here, they must
/// appear in README.md word for word, and a changed number in the data must make the check fail.
final class FrontsReportTests: XCTestCase {
    private var fronts: [String] {
        let root = CLI.repository.appendingPathComponent("fixtures/fronts")
        let concepts = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return concepts.sorted().map { root.appendingPathComponent($0).appendingPathComponent("fronts.json").path }
            .filter { FileManager.default.fileExists(atPath: $0) }
    }

    func testEveryConceptsFrontsAreCommitted() {
        for concept in ["style", "object", "both"] {
            XCTAssertTrue(fronts.contains { $0.hasSuffix("fixtures/fronts/\(concept)/fronts.json") }, "\(concept): \(fronts)")
        }
    }

    /// The attacks ran on the chosen points of both single-concept runs.
    func testTheAttacksOnTheChosenPointsAreCommitted() {
        for concept in ["style", "object"] {
            let file = CLI.repository.appendingPathComponent("fixtures/fronts/\(concept)/robustness.json").path
            XCTAssertTrue(FileManager.default.fileExists(atPath: file), file)
        }
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
            let robustness = (file as NSString).deletingLastPathComponent + "/robustness.json"
            guard FileManager.default.fileExists(atPath: robustness) else { continue }
            let attacks = try CLI.shell("""
                python3 -c 'import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open("formats/robustness.schema.json")))' '\(robustness)'
                """)
            XCTAssertEqual(attacks.status, 0, "\(robustness): \(attacks.stderr)")
        }
    }

    func testAChangedAttackResultMakesTheCheckFail() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for file in fronts {
            let robustness = (file as NSString).deletingLastPathComponent + "/robustness.json"
            guard FileManager.default.fileExists(atPath: robustness) else { continue }
            let copy = directory.appendingPathComponent("fronts.json").path
            // The adversarial attack brings the concept back on one more sample of every model.
            let result = try CLI.shell("""
                cp '\(file)' '\(copy)' && python3 -c 'import json, sys
                r = json.load(open(sys.argv[1]))
                for row in r["rows"]: row["adversarial"]["forget_rate"] = min(1, row["adversarial"]["forget_rate"] + 0.02)
                json.dump(r, open(sys.argv[2], "w"))' '\(robustness)' '\(directory.path)/robustness.json' \
                && python3 scripts/fronts_report.py '\(copy)' --check README.md
                """)
            XCTAssertEqual(result.status, 1, "\(robustness): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("robustness:"), result.stderr)
        }
    }

    /// Bad options stop scripts/fronts before any training, with the documented status.
    func testTheSweepRefusesBadOptionsBeforeRunningAnything() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("out").path
        for (options, status, message) in [
            ("--jobs 0", 64, "--jobs takes"), ("--jobs two", 64, "--jobs takes"), ("--seeds 1,1", 64, "--seeds takes"),
            ("--concept cube", 64, "invalid choice"), ("--existing", 1, "no seed with a finished distillation"),
            ("--grid-from '\(directory.path)/missing.json'", 1, "not a fronts.json"),
        ] {
            let result = try CLI.shell("DMSURGERY_BIN=/bin/true python3 scripts/fronts --out '\(out)' \(options)")
            XCTAssertEqual(result.status, Int32(status), "\(options): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(message), "\(options): \(result.stderr)")
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
