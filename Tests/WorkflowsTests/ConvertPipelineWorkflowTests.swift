import Foundation
import TensorFormats
import Workflows
import XCTest

/// `convert PIPELINE OUT_FOLDER` in-process: every component converted under the variant's names, the
/// rest copied, and an output inside the input refused before any folder is made.
final class ConvertPipelineWorkflowTests: XCTestCase {
    private static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    private let pipeline = repository.appendingPathComponent("fixtures/ldm/sd1").path
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dms-pipeline-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
        try InputSet.declare(inputs: [], outputs: [])  // the declared inputs are process-wide
    }

    func testEveryComponentIsConvertedUnderTheVariantNameAndTheRestCopied() throws {
        let out = directory.appendingPathComponent("bf16").path
        var settings = ConvertSettings(input: pipeline, output: out)
        settings.dtype = .bf16
        settings.open.variant = "bf16"
        settings.quiet = true
        let outcome = try ConvertWorkflow.run(settings)
        let (result, casts) = (outcome.result, outcome.casts)
        let written = Set(result.files.map { String($0.dropFirst(out.count + 1)) })
        XCTAssertEqual(written, ["model_index.json", "scheduler/scheduler_config.json",
                                 "text_encoder/model.bf16.safetensors", "text_encoder/config.json",
                                 "unet/diffusion_pytorch_model.bf16.safetensors", "unet/config.json",
                                 "vae/diffusion_pytorch_model.bf16.safetensors", "vae/config.json"])
        let original = try Checkpoint.openPipeline(pipeline)
        let converted = try Checkpoint.openPipeline(out, options: OpenOptions(variant: "bf16"))
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: converted.entries.map { ($0.name, $0.shape) }),
                       Dictionary(uniqueKeysWithValues: original.entries.map { ($0.name, $0.shape) }))
        // The fixture is stored in f16: every floating-point tensor is cast.
        let floats = original.entries.filter(\.dtype.isFloatingPoint).count
        XCTAssertGreaterThan(floats, 0)
        XCTAssertEqual(casts, floats)
        XCTAssertEqual(converted.entries.filter { $0.dtype == .bf16 }.count, floats)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/model_index.json")),
                       try Data(contentsOf: URL(fileURLWithPath: pipeline + "/model_index.json")))
    }

    func testAnOutputInsideTheInputIsRefusedBeforeAnyFolderIsMade() throws {
        let copy = directory.appendingPathComponent("sd1").path
        try FileManager.default.copyItem(atPath: pipeline, toPath: copy)
        for output in [copy + "/a/b", copy, copy + "/unet"] {
            XCTAssertThrowsError(try ConvertWorkflow.run(ConvertSettings(input: copy, output: output)), output) {
                XCTAssertEqual(($0 as? TensorFormatError)?.code, .sameFile)
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: copy + "/a"))
    }

    func testAFileOutputStillTakesTheUNetAlone() throws {
        let out = directory.appendingPathComponent("unet.safetensors").path
        let result = try ConvertWorkflow.run(ConvertSettings(input: pipeline, output: out)).result
        XCTAssertEqual(result.files, [out])
        XCTAssertEqual(try Checkpoint.open(out).entries.count, try Checkpoint.open(pipeline + "/unet").entries.count)
    }
}
