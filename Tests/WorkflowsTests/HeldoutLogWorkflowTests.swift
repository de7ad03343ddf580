import Foundation
import TensorFormats
import Training
import Workflows
import XCTest

/// `--heldout FILE --heldout-every N` through finetune: the log gains `heldout_loss` on every N-th and
/// the last iteration only, and the written weights are the bytes of the same run without the probe.
final class HeldoutLogWorkflowTests: XCTestCase {
    private static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    private func fixture(_ path: String) -> String { Self.repository.appendingPathComponent("fixtures/" + path).path }
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dms-heldout-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
        try InputSet.declare(inputs: [], outputs: [])  // the declared inputs are process-wide
    }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private func finetune(output: String, log: String, heldout: String?) throws {
        var training = TrainingSettings()
        training.steps = 5
        training.optimizer.batch = 2
        training.scheduler = fixture("engine/scheduler_config.json")
        training.log = log
        training.heldout = heldout
        training.heldoutEvery = 2
        try TrainingWorkflows.finetune(student: fixture("engine/cond_small"), initConfig: nil, output: OutputSettings(path: output, quiet: true),
                                       data: RetainSettings(data: fixture("training/data.safetensors")), teacher: fixture("training/teacher"),
                                       lower: LowerLevelSettings(), training: training, open: OpenOptions())
    }

    private func lines(_ log: String) throws -> [[String: Any]] {
        try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testTheLogHasTheHeldoutLossEveryNthAndLastStepAndTheWeightsAreUnchanged() throws {
        try finetune(output: path("with.safetensors"), log: path("with.jsonl"), heldout: fixture("training/data.safetensors"))
        try finetune(output: path("without.safetensors"), log: path("without.jsonl"), heldout: nil)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("with.safetensors"))),
                       try Data(contentsOf: URL(fileURLWithPath: path("without.safetensors"))))
        let with = try lines(path("with.jsonl"))
        XCTAssertEqual(with.compactMap { $0["heldout_loss"] == nil ? nil : $0["step"] as? Int }, [2, 4, 5])
        for line in with { if let loss = line["heldout_loss"] as? Double { XCTAssertTrue(loss > 0 && loss.isFinite) } }
        XCTAssertTrue(try lines(path("without.jsonl")).allSatisfy { $0["heldout_loss"] == nil })
    }

    func testAHeldoutFileThatIsAnOutputIsRefused() throws {
        _ = FileManager.default.createFile(atPath: path("log.jsonl"), contents: Data())
        XCTAssertThrowsError(try finetune(output: path("out.safetensors"), log: path("log.jsonl"), heldout: path("log.jsonl"))) { error in
            XCTAssertEqual((error as? ToolError)?.code, .sameFile, "\(error)")
        }
    }
}
