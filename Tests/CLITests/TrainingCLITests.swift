import Foundation
import TensorFormats
import XCTest

/// finetune, erase and unlearn through the binary: outputs, resume determinism, signals, data rules.
final class TrainingCLITests: XCTestCase {
    private var directory: URL!
    private let model = CLI.fixture("engine/cond_small")
    private let teacher = CLI.fixture("training/teacher")
    private let data = CLI.fixture("training/data.safetensors")
    private let forget = CLI.fixture("training/forget.safetensors")
    private let scheduler = CLI.fixture("engine/scheduler_config.json")

    override func setUpWithError() throws { directory = try CLI.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private func unlearnArguments(_ out: String, steps: Int) -> [String] {
        ["unlearn", model, out, "--teacher", teacher, "--data", data, "--forget", forget, "--inner-steps", "2",
         "--batch", "2", "--ema", "0.9", "--steps", String(steps), "-q"]
    }

    func testFinetuneFromAConfigWritesALoadableCheckpointAndLog() throws {
        let out = path("teacher.safetensors"), log = path("log.jsonl")
        let r = try CLI.run(["finetune", "--init-config", "\(model)/config.json", out, "--data", data, "--steps", "3",
                             "--batch", "2", "--uncond-prob", "0.5", "--seed", "3", "--log", log, "--scheduler", scheduler, "-q"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        let first = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        XCTAssertEqual(first["step"] as? Int, 1)
        XCTAssertNotNil(first["l_diff"] as? Double)
        let checkpoint = try Checkpoint.open(out)
        XCTAssertNotNil(checkpoint.configJSON)
        let training = try XCTUnwrap(checkpoint.metadata?["dmsurgery.training"])
        XCTAssertTrue(training.contains("\"command\":\"finetune\""), training)
        // The written model runs.
        let forward = try CLI.run(["forward", "--model", out, "--inputs", CLI.fixture("engine/cond_small/io.safetensors"),
                                   "--output", path("f.safetensors"), "-q"])
        XCTAssertEqual(forward.status, 0, forward.stderr)
    }

    func testPrunedStudentKeepsItsShapesAndBaseConfig() throws {
        let pruned = CLI.fixture("engine/cond_pruned"), out = path("student.safetensors")
        let r = try CLI.run(["finetune", pruned, out, "--teacher", teacher, "--data", data, "--steps", "2", "--batch", "2", "-q"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let source = try Checkpoint.open(pruned), written = try Checkpoint.open(out)
        let shapes = { (c: Checkpoint) in Dictionary(uniqueKeysWithValues: c.entries.map { ($0.name, $0.shape) }) }
        XCTAssertEqual(shapes(written), shapes(source))
        XCTAssertEqual(written.configJSON, source.configJSON)
        XCTAssertNotEqual(try written.floats(named: "conv_in.weight"), try source.floats(named: "conv_in.weight"))
    }

    func testResumedRunsAreByteIdentical() throws {
        let distill = ["finetune", model, "", "--teacher", teacher, "--data", data, "--batch", "2", "--ema", "0.99", "-q"]
        func finetune(_ out: String, _ extra: [String]) throws -> CLIResult {
            var args = distill
            args[2] = out
            return try CLI.run(args + extra)
        }
        XCTAssertEqual(try finetune(path("full.safetensors"), ["--steps", "4"]).status, 0)
        XCTAssertEqual(try finetune(path("part.safetensors"), ["--steps", "2", "--checkpoint-every", "2"]).status, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("part.safetensors.state.safetensors")))
        let resumed = try finetune(path("part.safetensors"), ["--steps", "4", "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(FileManager.default.contents(atPath: path("full.safetensors")),
                       FileManager.default.contents(atPath: path("part.safetensors")), "finetune resumed")

        XCTAssertEqual(try CLI.run(unlearnArguments(path("u-full.safetensors"), steps: 3)).status, 0)
        XCTAssertEqual(try CLI.run(unlearnArguments(path("u-part.safetensors"), steps: 1) + ["--checkpoint-every", "1"]).status, 0)
        let u = try CLI.run(unlearnArguments(path("u-part.safetensors"), steps: 3) + ["--resume"])
        XCTAssertEqual(u.status, 0, u.stderr)
        XCTAssertEqual(FileManager.default.contents(atPath: path("u-full.safetensors")),
                       FileManager.default.contents(atPath: path("u-part.safetensors")), "unlearn resumed")
    }

    func testInterruptSavesAStateThatResumesToTheSameBytes() throws {
        let args = "--teacher \(teacher) --data \(data) --forget \(forget) --batch 2 --schedule interleaved --upper-every 2 -q"
        let full = path("full.safetensors"), part = path("part.safetensors")
        let r = try CLI.shell("""
            $DMS unlearn \(model) \(full) \(args) --steps 16 || exit 9
            $DMS unlearn \(model) \(part) \(args) --steps 16 --log \(part).log & pid=$!
            # The first log line means the loop runs (and owns SIGINT).
            until [ -s \(part).log ] || ! kill -0 $pid 2>/dev/null; do sleep 0.05; done
            sleep 0.5; kill -INT $pid; wait $pid; echo "status $?"
            test -e \(part).state.safetensors && echo state
            if test -e \(part); then echo finished-early
            else $DMS unlearn \(model) \(part) \(args) --steps 16 --resume --log \(part).log; fi
            """)
        XCTAssertEqual(r.status, 0, r.stderr)
        let text = String(decoding: r.stdout, as: UTF8.self)
        if !text.contains("finished-early") {
            XCTAssertTrue(text.contains("status 130"), text)
            XCTAssertTrue(text.contains("state"), text)
        }
        XCTAssertEqual(FileManager.default.contents(atPath: full), FileManager.default.contents(atPath: part))
        let log = try String(contentsOfFile: part + ".log", encoding: .utf8)
        XCTAssertEqual(log.split(separator: "\n").count, 16, "one log line per step across the interrupt")
    }

    func testResumeWithOtherOptionsIsRefused() throws {
        XCTAssertEqual(try CLI.run(unlearnArguments(path("u.safetensors"), steps: 1) + ["--checkpoint-every", "1"]).status, 0)
        let r = try CLI.run(unlearnArguments(path("u.safetensors"), steps: 2) + ["--resume", "--lambda", "5"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("run-mismatch: the state was written by a run with unlearn.penalty.lambda 100.0, this run has 5.0"), r.stderr)
    }

    func testPromptDropoutNeedsTheEmptyPrompt() throws {
        let noUncond = path("no-uncond.safetensors")
        XCTAssertEqual(try CLI.run(["convert", data, noUncond, "--exclude", "uncond", "-q"]).status, 0)
        for command in [["finetune", model, path("o.safetensors")],
                        ["unlearn", model, path("o.safetensors"), "--teacher", teacher, "--forget", forget]] {
            let r = try CLI.run(command + ["--data", noUncond, "--uncond-prob", "0.1", "--steps", "1", "--batch", "2", "-q"])
            XCTAssertEqual(r.status, 2, r.stderr)
            XCTAssertTrue(r.stderr.hasPrefix("dmsurgery: error: \(noUncond): missing-tensor: "), r.stderr)
            XCTAssertTrue(r.stderr.contains("(tensor 'uncond')"), r.stderr)
        }
    }

    func testTeacherOfOtherWidthsIsRefused() throws {
        // Same blocks, channels and context as the student, twice the widths: feature KD cannot line up.
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: model + "/config.json"))) as! [String: Any]
        config["block_out_channels"] = (config["block_out_channels"] as! [Int]).map { $0 * 2 }
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path("wide.json")))
        let made = try CLI.run(["finetune", "--init-config", path("wide.json"), path("wide.safetensors"), "--data", data,
                                "--steps", "1", "--batch", "2", "-q"])
        XCTAssertEqual(made.status, 0, made.stderr)
        let r = try CLI.run(["finetune", model, path("o.safetensors"), "--teacher", path("wide.safetensors"), "--data", data,
                             "--steps", "1", "--batch", "2", "-q"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("dmsurgery: error: \(path("wide.safetensors")): invalid-config: "), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("o.safetensors")))
    }

    func testBadDataFilesGiveOneLineAndExitTwo() throws {
        let cases = ["x0_rank": "bad-shape", "x0_channels": "bad-shape", "count_mismatch": "count-mismatch",
                     "cond_dim": "bad-shape", "uncond_shape": "bad-shape", "missing_x0": "missing-tensor",
                     "missing_cond": "missing-tensor", "empty": "empty-data", "nan": "non-finite"]
        for (name, rule) in cases {
            let file = CLI.fixture("training/bad/\(name).safetensors")
            let r = try CLI.run(["finetune", model, path("o.safetensors"), "--data", file, "--steps", "1", "-q"])
            XCTAssertEqual(r.status, 2, name)
            XCTAssertTrue(r.stderr.hasPrefix("dmsurgery: error: \(file): \(rule): "), "\(name): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, name)
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("o.safetensors")), name)
        }
    }

    func testUnlearnReadsAndWritesPipes() throws {
        let r = try CLI.shell("""
            $DMS convert \(model) - -q | $DMS unlearn - - --teacher \(teacher) --data \(data) --forget \(forget) \
              --steps 1 --inner-steps 1 --batch 2 --scheduler \(scheduler) -q | $DMS verify - -q
            """)
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func testPrunedStudentUnlearnsThroughPipes() throws {
        // The mission's pipeline: prune | unlearn | verify, with the pruned widths and mask carried through.
        let out = path("bilevel.safetensors")
        let r = try CLI.shell("""
            $DMS prune --ratio 0.5 \(model) - -q | $DMS unlearn - - --teacher \(teacher) --data \(data) \
              --forget \(forget) --schedule interleaved --upper-every 2 --steps 2 --batch 2 --scheduler \(scheduler) -q \
              | tee \(out) | $DMS verify - -q
            """)
        XCTAssertEqual(r.status, 0, r.stderr)
        let dense = try Checkpoint.open(model), student = try Checkpoint.open(out)
        XCTAssertNotNil(student.metadata?["dmsurgery.mask"], "the mask summary survives training")
        XCTAssertNotNil(student.metadata?["dmsurgery.training"])
        let name = "down_blocks.0.resnets.0.conv1.weight"
        let before = try XCTUnwrap(dense.entry(named: name)).shape, after = try XCTUnwrap(student.entry(named: name)).shape
        XCTAssertEqual(after[0] * 2, before[0], "conv1 keeps half its output channels")
        XCTAssertEqual(Array(after.dropFirst()), Array(before.dropFirst()))
    }

    func testEraseDrawsForgetImagesForPromptOnlyFiles() throws {
        let prompts = CLI.fixture("training/forget_prompts.safetensors")
        let r = try CLI.run(["erase", model, path("e.safetensors"), "--teacher", teacher, "--forget", prompts,
                             "--steps", "2", "--batch", "2", "--forget-sample-steps", "3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("drawing 2 forget images"), r.stderr)
        let ablation = try CLI.run(["erase", model, path("a.safetensors"), "--teacher", teacher, "--forget", prompts,
                                    "--method", "ablation", "--steps", "1", "-q"])
        XCTAssertEqual(ablation.status, 2)
        XCTAssertTrue(ablation.stderr.contains("missing-tensor"), ablation.stderr)
        XCTAssertTrue(ablation.stderr.contains("(tensor 'anchor')"), ablation.stderr)
        let withAnchor = try CLI.run(["erase", model, path("b.safetensors"), "--teacher", teacher, "--forget", forget,
                                      "--method", "ablation", "--steps", "2", "--batch", "2", "-q"])
        XCTAssertEqual(withAnchor.status, 0, withAnchor.stderr)
    }
}
