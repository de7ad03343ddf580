import Foundation
import TensorFormats
import XCTest

/// One output rule for every command: no output (OUT, --state, --log, --emit-mask, --write-sha256,
/// --out, --grid, --output, shards) may be an input of the same command, or lie inside an input folder;
/// it is refused with exit 2 before any work and the input is left as it was.
final class OutputIsInputCLITests: XCTestCase {
    private var directory: URL!
    private var model: String { path("cond_small") }
    private var data: String { path("data.safetensors") }
    private var forget: String { path("forget.safetensors") }
    private let teacher = CLI.fixture("training/teacher")

    override func setUpWithError() throws {
        directory = try CLI.temporaryDirectory()
        // Copies: a broken rule must not destroy the fixtures.
        try FileManager.default.copyItem(atPath: CLI.fixture("engine/cond_small"), toPath: model)
        try FileManager.default.copyItem(atPath: CLI.fixture("training/data.safetensors"), toPath: data)
        try FileManager.default.copyItem(atPath: CLI.fixture("training/forget.safetensors"), toPath: forget)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private func assertRefused(_ arguments: [String], protecting protected: String, stdinFile: String? = nil,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let before = FileManager.default.contents(atPath: protected)
        let r = try CLI.run(arguments + ["-q"], stdinFile: stdinFile)
        XCTAssertEqual(r.status, 2, r.stderr, file: file, line: line)
        XCTAssertTrue(r.stderr.contains("output-is-input: "), r.stderr, file: file, line: line)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr, file: file, line: line)
        XCTAssertEqual(FileManager.default.contents(atPath: protected), before, "\(protected) changed", file: file, line: line)
    }

    private var weights: String { model + "/diffusion_pytorch_model.safetensors" }

    func testConvertOntoItsInputAndIntoItsShardFolderIsRefused() throws {
        try assertRefused(["convert", weights, weights, "--dtype", "bf16"], protecting: weights)
        try assertRefused(["convert", "-", weights], protecting: weights, stdinFile: weights)
        let shards = path("shards")
        try FileManager.default.createDirectory(atPath: shards, withIntermediateDirectories: true)
        XCTAssertEqual(try CLI.run(["convert", weights, shards + "/model.safetensors", "--shard-size", "300KB", "-q"]).status, 0)
        let index = shards + "/model.safetensors.index.json"
        let first = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: shards).first { $0.hasPrefix("model-00001-of-") })
        try assertRefused(["convert", index, shards + "/model.safetensors", "--shard-size", "300KB"], protecting: shards + "/" + first)
        try assertRefused(["convert", index, shards + "/" + first], protecting: shards + "/" + first)
        try assertRefused(["convert", index, shards + "/model.safetensors.index.json", "--dtype", "bf16"], protecting: index)
    }

    func testVerifyManifestOntoTheCheckpointIsRefused() throws {
        try assertRefused(["verify", weights, "--write-sha256", weights], protecting: weights)
    }

    func testPruneOutputAndMaskOntoTheModelAreRefused() throws {
        try assertRefused(["prune", model, weights, "--ratio", "0.5"], protecting: weights)
        try assertRefused(["prune", model, "--emit-mask", weights], protecting: weights)
        try assertRefused(["prune", model, path("p.safetensors"), "--emit-mask", model + "/config.json"], protecting: model + "/config.json")
    }

    func testTrainingOutputsOntoInputsAreRefused() throws {
        let common = ["--steps", "1", "--batch", "2"]
        try assertRefused(["finetune", model, data, "--data", data] + common, protecting: data)
        try assertRefused(["finetune", model, path("o.safetensors"), "--data", data, "--state", data] + common, protecting: data)
        try assertRefused(["finetune", model, path("o.safetensors"), "--data", data, "--log", data] + common, protecting: data)
        try assertRefused(["finetune", model, path("o.safetensors"), "--data", data, "--state", weights] + common, protecting: weights)
        try assertRefused(["erase", model, forget, "--teacher", teacher, "--forget", forget] + common, protecting: forget)
        try assertRefused(["unlearn", model, path("o.safetensors"), "--teacher", teacher, "--data", data, "--forget", forget,
                           "--state", weights] + common, protecting: weights)
    }

    func testSampleEvalAndForwardOutputsOntoInputsAreRefused() throws {
        try assertRefused(["sample", "--model", model, "--out", weights, "--steps", "1"], protecting: weights)
        try assertRefused(["eval", model, "--grid", weights], protecting: weights)
        let io = path("io.safetensors")
        try FileManager.default.copyItem(atPath: model + "/io.safetensors", toPath: io)
        try assertRefused(["forward", "--model", model, "--inputs", io, "--output", io], protecting: io)
    }

    /// SIGINT while OUT is being written (here a FIFO nobody reads yet) completes OUT; every step ran, so
    /// the run is done and exits 0 (a 130 would leave nothing for --resume: issue 25 §9.13).
    /// SIGINT while the data is still being read (standard input held open) is honoured at the loop's
    /// start with a state at step 0, so the 130 it exits with can be resumed to the uninterrupted bytes.
    func testInterruptBeforeTheFirstStepSavesAResumableState() throws {
        let out = path("early.safetensors"), full = path("full.safetensors")
        let r = try CLI.shell("""
            (sleep 2; cat \(data)) | $DMS finetune \(model) \(out) --data - --steps 2 --batch 2 -q & pid=$!
            sleep 1; kill -INT $pid; wait $pid; echo "status $?"
            test -e \(out).state.safetensors && echo state
            $DMS finetune \(model) \(out) --data - --steps 2 --batch 2 --resume -q < \(data) && echo resumed
            $DMS finetune \(model) \(full) --data - --steps 2 --batch 2 -q < \(data)
            """)
        let text = String(decoding: r.stdout, as: UTF8.self)
        XCTAssertTrue(text.contains("status 130") && text.contains("state") && text.contains("resumed"), text + r.stderr)
        XCTAssertEqual(FileManager.default.contents(atPath: out), FileManager.default.contents(atPath: full))
    }

    func testInterruptWhileWritingOutputCompletesIt() throws {
        let out = path("out"), log = path("log"), got = path("got.safetensors")
        let r = try CLI.shell("""
            mkfifo \(out)
            $DMS finetune \(model) \(out) --data \(data) --steps 1 --batch 2 --log \(log) -q & pid=$!
            # The log line means the loop is done: the command is now opening OUT, blocked until a reader comes.
            until [ -s \(log) ] || ! kill -0 $pid 2>/dev/null; do sleep 0.05; done
            sleep 0.3; kill -INT $pid
            sleep 0.3; cat \(out) > \(got); wait $pid; echo "status $?"
            """)
        XCTAssertTrue(String(decoding: r.stdout, as: UTF8.self).contains("status 0"), String(decoding: r.stdout, as: UTF8.self) + r.stderr)
        let written = try Checkpoint.open(got)
        XCTAssertNotNil(written.metadata?["dmsurgery.training"])
        XCTAssertEqual(written.entries.count, try Checkpoint.open(weights).entries.count)
    }
}
