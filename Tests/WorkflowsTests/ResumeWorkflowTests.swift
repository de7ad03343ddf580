import Foundation
import TensorFormats
import Training
import Workflows
import XCTest

/// `--resume` in-process through the training workflows: a state is only continued by the run that
/// wrote it; another scheduler, data file, teacher or student is refused by name (exit 2 in the CLI).
final class ResumeWorkflowTests: XCTestCase {
    private static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    private func fixture(_ path: String) -> String { Self.repository.appendingPathComponent("fixtures/" + path).path }
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dms-resume-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
        try InputSet.declare(inputs: [], outputs: [])  // the declared inputs are process-wide
    }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private struct Run {
        var student: String
        var data: String
        var teacher: String?
        var training = TrainingSettings()
    }

    private func finetune(_ run: Run, output: String) throws {
        try TrainingWorkflows.finetune(student: run.student, initConfig: nil, output: OutputSettings(path: output, quiet: true),
                                       data: RetainSettings(data: run.data), teacher: run.teacher, lower: LowerLevelSettings(), training: run.training,
                                       open: OpenOptions())
    }

    /// Runs one step with a state, then resumes to two steps with `change` applied; returns the error.
    private func resumeError(_ change: (inout Run) throws -> Void) throws -> TrainingError? {
        var run = Run(student: fixture("engine/cond_small"), data: fixture("training/data.safetensors"),
                      teacher: fixture("training/teacher"))
        run.training.steps = 1
        run.training.optimizer.batch = 2
        run.training.checkpointEvery = 1
        run.training.scheduler = fixture("engine/scheduler_config.json")
        let out = path("out.safetensors")
        try finetune(run, output: out)
        run.training.steps = 2
        run.training.resume = true
        try change(&run)
        do {
            try finetune(run, output: out)
            return nil
        } catch let error as TrainingError {
            return error
        }
    }

    func testTheSameRunResumes() throws {
        XCTAssertNil(try resumeError { _ in })
    }

    func testAnotherSchedulerIsRefused() throws {
        let error = try resumeError { run in
            let text = try String(contentsOfFile: run.training.scheduler!, encoding: .utf8)
            try text.replacingOccurrences(of: "0.012", with: "0.02").write(toFile: path("scheduler.json"), atomically: true, encoding: .utf8)
            run.training.scheduler = path("scheduler.json")
        }
        XCTAssertEqual(error?.code, .runMismatch)
        XCTAssertTrue(error?.message.contains("scheduler.betaEnd 0.012") ?? false, "\(String(describing: error))")
    }

    func testAnotherDataFileIsRefused() throws {
        let error = try resumeError { run in
            let other = path("data2.safetensors")
            let source = try Checkpoint.open(run.data, options: OpenOptions(randomAccess: true))
            var tensors = try source.entries.map { ($0.name, $0.shape, try source.floats(of: $0)) }
            tensors[tensors.firstIndex { $0.0 == "x0" }!].2[0] += 0.5
            try SafetensorsWriter.writeFloats(tensors, metadata: source.metadata ?? Metadata(), to: other, force: true)
            run.data = other
        }
        XCTAssertEqual(error?.code, .runMismatch)
        XCTAssertTrue(error?.message.contains("inputs.data") ?? false, "\(String(describing: error))")
    }

    func testAnotherTeacherIsRefused() throws {
        let error = try resumeError { $0.teacher = fixture("engine/cond_small") }
        XCTAssertTrue(error?.message.contains("inputs.teacher") ?? false, "\(String(describing: error))")
    }

    func testNoTeacherIsRefused() throws {
        let error = try resumeError { $0.teacher = nil }
        XCTAssertTrue(error?.message.contains("inputs.teacher") ?? false, "\(String(describing: error))")
    }

    func testAnotherOptionIsRefused() throws {
        let error = try resumeError { $0.training.optimizer.weightDecay = 0 }
        XCTAssertTrue(error?.message.contains("optimizer.weightDecay 0.01") ?? false, "\(String(describing: error))")
    }

    /// A state whose run description has the flat shape of format 1 (before the settings were nested) is
    /// refused with one line saying so, not read as another run's options.
    func testAStateOfTheOlderFormatIsRefusedByName() throws {
        let error = try resumeError { run in
            let statePath = run.training.statePath(output: path("out.safetensors"))!
            var state = try TrainingState(contentsOf: statePath)
            state.values["run"] = #"{"batch":2,"command":"finetune","lr":0.0001,"seed":0,"warmup":0,"weightDecay":0.01}"#
            try state.write(to: statePath)
        }
        XCTAssertEqual(error?.code, .runMismatch)
        XCTAssertTrue(error?.message.contains("run description is format 1, this dmsurgery reads format 2") ?? false,
                      "\(String(describing: error))")
    }
}
