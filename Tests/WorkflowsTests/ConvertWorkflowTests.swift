import Foundation
import TensorFormats
import Workflows
import XCTest

/// `convert`'s output placement in-process: a folder gets weights and config.json, shards an index, and
/// an output that is the input is refused before anything is written.
final class ConvertWorkflowTests: XCTestCase {
    private static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    private let model = repository.appendingPathComponent("fixtures/engine/cond_small").path
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dms-convert-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
        try InputSet.declare(inputs: [], outputs: [])  // the declared inputs are process-wide
    }

    func testAFolderOutputGetsWeightsAndConfig() throws {
        let out = directory.path + "/model/"
        let outcome = try ConvertWorkflow.run(ConvertSettings(input: model, output: out))
        let (result, casts) = (outcome.result, outcome.casts)
        XCTAssertEqual(casts, 0)
        XCTAssertEqual(result.files.map { URL(fileURLWithPath: $0).lastPathComponent },
                       ["diffusion_pytorch_model.safetensors", "config.json"])
        XCTAssertEqual(try Checkpoint.open(out).configJSON, try Checkpoint.open(model).configJSON)
    }

    func testShardsGetAnIndexAndReadBack() throws {
        var settings = ConvertSettings(input: model, output: directory.appendingPathComponent("m.safetensors").path)
        settings.shardBytes = 300_000
        settings.dtype = .bf16
        let outcome = try ConvertWorkflow.run(settings)
        let (result, casts) = (outcome.result, outcome.casts)
        XCTAssertGreaterThan(result.files.count, 2)
        XCTAssertGreaterThan(casts, 0)
        let back = try Checkpoint.open(directory.appendingPathComponent("m.safetensors.index.json").path)
        XCTAssertEqual(back.entries.count, try Checkpoint.open(model).entries.count)
    }

    func testOutputOntoTheInputIsRefusedBeforeWriting() throws {
        let copy = directory.appendingPathComponent("w.safetensors").path
        try FileManager.default.copyItem(atPath: model + "/diffusion_pytorch_model.safetensors", toPath: copy)
        var settings = ConvertSettings(input: copy, output: copy)
        settings.dtype = .bf16
        XCTAssertThrowsError(try ConvertWorkflow.run(settings)) { XCTAssertEqual(($0 as? TensorFormatError)?.code, .sameFile) }
        XCTAssertEqual(try Checkpoint.open(copy).entries.first?.dtype, .f32)
    }
}
