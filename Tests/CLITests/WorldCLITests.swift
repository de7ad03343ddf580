import Foundation
import TensorFormats
import XCTest

/// `world` and `eval` through the binary.
final class WorldCLITests: XCTestCase {
    /// sha256 of each file for `world --seed 0 --per-prompt 4`: renders use only integer geometry and
    /// exact constants, so these hold on every machine.
    static let golden = [
        "all.safetensors": "5957573d41edc0f322482d8942365644040e0c60b72e9a1751665386104ece6a",
        "forget.safetensors": "899e0461e19f88ff314aedb2a0ddd3bc5c6e6ca1e128dcca6d53c05e145ae3db",
        "heldout.safetensors": "12a366a545bcddcdf91cf9f9d90eb172ead283d7ada993c0fdb99e006a83fec5",
        "retain.safetensors": "4b4130775bea9dc616f595f45c31762e9a6d73a708a8ca9484f8a48d2fff3412",
        "world.json": "7f8cb847d25541a041bafeb67afd3dcb27c0004371cafe48e97aec91021237a0",
    ]

    func testWorldWritesTheDocumentedFilesWithGoldenBytes() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try CLI.run(["world", directory.path, "--seed", "0", "--per-prompt", "4"])
        XCTAssertEqual(result.status, 0, result.stderr)
        for name in Self.golden.keys { XCTAssertTrue(result.stderr.contains(directory.appendingPathComponent(name).path), name) }
        let sums = try CLI.shell("cd \(directory.path) && sha256sum all.safetensors forget.safetensors heldout.safetensors retain.safetensors world.json")
        XCTAssertEqual(sums.status, 0, sums.stderr)
        for line in String(decoding: sums.stdout, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            XCTAssertEqual(Self.golden[String(parts[1])], String(parts[0]), String(parts[1]))
        }
        let all = try Checkpoint.open(directory.appendingPathComponent("all.safetensors").path)
        XCTAssertEqual(all.entry(named: "x0")?.shape, [144, 3, 16, 16])
        XCTAssertEqual(all.entry(named: "cond")?.shape, [144, 4, 32])
        XCTAssertEqual(all.entry(named: "uncond")?.shape, [4, 32])
        let forget = try Checkpoint.open(directory.appendingPathComponent("forget.safetensors").path)
        XCTAssertNil(forget.entry(named: "x0"))
        XCTAssertEqual(forget.entry(named: "anchor")?.shape, [9, 4, 32])
        let retain = try Checkpoint.open(directory.appendingPathComponent("retain.safetensors").path)
        let prompts = try XCTUnwrap(retain.metadata?["dmsurgery.prompts"])
        XCTAssertFalse(prompts.contains("stripes"))
        XCTAssertEqual(retain.entry(named: "x0")?.shape, [108, 3, 16, 16])
    }

    func testAnotherSeedGivesOtherRendersButTheSameEmbeddings() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        XCTAssertEqual(try CLI.run(["world", directory.path, "--seed", "1", "--per-prompt", "4", "-q"]).status, 0)
        let sums = try CLI.shell("cd \(directory.path) && sha256sum all.safetensors forget.safetensors")
        let text = String(decoding: sums.stdout, as: UTF8.self)
        XCTAssertFalse(text.contains(Self.golden["all.safetensors"]!))
        XCTAssertTrue(text.contains(Self.golden["forget.safetensors"]!))
    }

    func testPromptsListsEveryPromptAndMarksTheForgetStyle() throws {
        let result = try CLI.run(["world", "--prompts"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = String(decoding: result.stdout, as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(lines.count, 36)
        XCTAssertEqual(lines.filter { $0.contains("\tforget\t") }.count, 9)
        XCTAssertTrue(lines.filter { $0.contains("\tforget\t") }.allSatisfy { $0.hasSuffix("stripes style") })
        XCTAssertEqual(lines.first, "0\tretain\tred square, flat style")
    }

    func testWorldWithoutADirectoryIsAUsageError() throws {
        XCTAssertEqual(try CLI.run(["world"]).status, 64)
        XCTAssertEqual(try CLI.run(["world", "/tmp/x", "--per-prompt", "0"]).status, 64)
    }

    func testUnwritableDirectoryIsOneErrorLine() throws {
        let result = try CLI.run(["world", "/proc/dmsurgery-world-test"])
        XCTAssertEqual(result.status, 2)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        // The one folder maker (OutputFile.createFolder) names the file and the system's reason.
        XCTAssertTrue(result.stderr.hasPrefix("dmsurgery: error: /proc/dmsurgery-world-test: ")
                      && result.stderr.contains("cannot create the folder"), result.stderr)
    }

    func testEvalRefusesAModelThatDoesNotFitTheWorld() throws {
        // The embedded default is a 4-channel latent model.
        let result = try CLI.run(["eval", CLI.fixture("default")])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderr.hasPrefix("dmsurgery: error: "), result.stderr)
        XCTAssertTrue(result.stderr.contains("world-mismatch: in_channels"), result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stdout.isEmpty)
    }

    func testEvalRefusesAMissingOrGarbledModel() throws {
        XCTAssertEqual(try CLI.run(["eval", "/nonexistent/model.safetensors"]).status, 2)
        let garbled = try CLI.run(["eval", "-"], stdin: Data("not a checkpoint at all".utf8))
        XCTAssertEqual(garbled.status, 2)
        XCTAssertEqual(garbled.stderr.split(separator: "\n").count, 1, garbled.stderr)
    }

    func testEvalUsageErrors() throws {
        XCTAssertEqual(try CLI.run(["eval"]).status, 64)
        XCTAssertEqual(try CLI.run(["eval", "m", "--config", "c"]).status, 64)
        XCTAssertEqual(try CLI.run(["eval", "m", "--samples", "0"]).status, 64)
    }

    /// A narrow random model: the debug binary runs the kernels unoptimised (EvaluationTests runs the
    /// teacher's shape).
    func testEvalJSONOnARandomModel() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let grid = directory.appendingPathComponent("grid.png").path
        let result = try CLI.run(["eval", "--config", CLI.fixture("concept-world/tiny-unet-config.json"),
                                  "--samples", "1", "--steps", "1", "--json", "--grid", grid, "-q"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
        for key in ["forget_rate", "retain_accuracy", "retain_colour_accuracy", "retain_shape_accuracy", "retain_style_accuracy", "forget_content_accuracy"] {
            let value = try XCTUnwrap(object[key] as? Double, key)
            XCTAssertTrue(value >= 0 && value <= 1, key)
        }
        XCTAssertGreaterThan(try XCTUnwrap(object["heldout_loss"] as? Double), 0)
        XCTAssertEqual(object["detectors_trusted"] as? Bool, true)
        XCTAssertEqual((object["prompts"] as? [Any])?.count, 36)
        let text = String(decoding: result.stdout, as: UTF8.self)
        XCTAssertLessThan(try XCTUnwrap(text.range(of: "\"forget_rate\"")).lowerBound, try XCTUnwrap(text.range(of: "\"retain_accuracy\"")).lowerBound)
        let png = try Data(contentsOf: URL(fileURLWithPath: grid))
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
    }

    func testConceptStyleWritesTheOriginalBytes() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try CLI.run(["world", directory.path, "--seed", "0", "--per-prompt", "4", "--concept", "style", "-q"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let sums = try CLI.shell("cd \(directory.path) && sha256sum all.safetensors forget.safetensors heldout.safetensors retain.safetensors world.json")
        let lines = String(decoding: sums.stdout, as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(lines.count, 5)
        for line in lines {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            XCTAssertEqual(Self.golden[String(parts[1])], String(parts[0]), String(parts[1]))
        }
    }

    func testObjectAndBothWorldsSplitTheirPrompts() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for (concept, forget, retain) in [("object", 12, 36), ("both", 21, 27)] {
            let dir = directory.appendingPathComponent(concept)
            let result = try CLI.run(["world", dir.path, "--per-prompt", "2", "--concept", concept, "-q"])
            XCTAssertEqual(result.status, 0, result.stderr)
            let all = try Checkpoint.open(dir.appendingPathComponent("all.safetensors").path)
            XCTAssertEqual(all.entry(named: "x0")?.shape, [96, 3, 16, 16])
            let f = try Checkpoint.open(dir.appendingPathComponent("forget.safetensors").path)
            XCTAssertEqual(f.entry(named: "cond")?.shape, [forget, 4, 32], concept)
            XCTAssertEqual(f.entry(named: "anchor")?.shape, [forget, 4, 32], concept)
            let r = try Checkpoint.open(dir.appendingPathComponent("retain.safetensors").path)
            XCTAssertEqual(r.entry(named: "x0")?.shape, [2 * retain, 3, 16, 16], concept)
            XCTAssertFalse(try XCTUnwrap(r.metadata?["dmsurgery.prompts"]).contains("cross"), concept)
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("world.json"))) as? [String: Any])
            XCTAssertEqual(json["concept"] as? String, concept)
            XCTAssertEqual((json["vocabulary"] as? [String])?.suffix(3), ["cross", "stripy", "plus"])
            XCTAssertEqual((json["prompts"] as? [Any])?.count, 48)
        }
        let list = try CLI.run(["world", "--prompts", "--concept", "both"])
        let lines = String(decoding: list.stdout, as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(lines.count, 48)
        XCTAssertEqual(lines.filter { $0.contains("\tforget\t") }.count, 21)
        XCTAssertEqual(lines.last, "47\tforget\tblue cross, checker style")
    }

    func testEvalScoresBothConceptsAndRunsBothAttacks() throws {
        let result = try CLI.run(["eval", "--config", CLI.fixture("concept-world/tiny-unet-config.json"), "--concept", "both",
                                  "--attack", "paraphrase", "--attack", "adversarial", "--attack-steps", "2", "--attack-images", "1",
                                  "--samples", "1", "--steps", "1", "--json", "-q"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
        XCTAssertEqual(object["concept"] as? String, "both")
        XCTAssertEqual(object["forget_samples"] as? Int, 21)
        XCTAssertEqual(object["retain_samples"] as? Int, 27)
        XCTAssertEqual((object["prompts"] as? [Any])?.count, 48)
        let rates = try XCTUnwrap(object["forget_rates"] as? [String: Double])
        XCTAssertEqual(Set(rates.keys), ["style", "object"])
        let attacks = try XCTUnwrap(object["attacks"] as? [String: [String: Any]])
        XCTAssertEqual(Set(attacks.keys), ["paraphrase", "adversarial"])
        XCTAssertEqual(attacks["paraphrase"]?["forget_samples"] as? Int, 21)
        let adversarial = try XCTUnwrap(attacks["adversarial"])
        for key in ["forget_rate", "loss_before", "loss_after", "mean_shift"] { XCTAssertNotNil(adversarial[key] as? Double, key) }
        XCTAssertEqual(adversarial["steps"] as? Int, 2)
        XCTAssertEqual(adversarial["targets"] as? String, "renders")
    }

    func testEvalAttackUsageErrors() throws {
        let config = CLI.fixture("concept-world/tiny-unet-config.json")
        for bad in [["--attack", "paraphrase", "--attack", "paraphrase"], ["--attack-steps", "-1"], ["--attack-steps", "100000"],
                    ["--attack-radius", "nan"], ["--attack-lr", "0"], ["--attack-images", "0"], ["--attack", "jailbreak"], ["--concept", "colour"]] {
            XCTAssertEqual(try CLI.run(["eval", "--config", config] + bad).status, 64, bad.joined(separator: " "))
        }
        let result = try CLI.run(["eval", "--config", config, "--attack", "adversarial", "--teacher", CLI.fixture("default"), "--samples", "1", "--steps", "1"])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderr.contains("world-mismatch"), result.stderr)
    }
}
