import Foundation
import Surgery
import TensorFormats
import Workflows
import XCTest

/// inspect, verify and diff in-process: the reports and the text the CLI prints, checked against the
/// file's own header and sha256sum(1).
final class ReportWorkflowTests: XCTestCase {
    private static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    private let weights = repository.appendingPathComponent("fixtures/engine/cond_small/diffusion_pytorch_model.safetensors").path
    private let pipeline = repository.appendingPathComponent("fixtures/ldm/sd1").path
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dms-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
        try InputSet.declare(inputs: [], outputs: [])  // the declared inputs are process-wide
    }

    /// The tensor names in a safetensors header, read with JSONSerialization (not dmsurgery's parser).
    private func headerNames(_ path: String) throws -> Set<String> {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let length = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as? [String: Any])
        return Set(header.keys.filter { $0 != "__metadata__" })
    }

    func testInspectCountsEveryTensorOfTheHeader() throws {
        let names = try headerNames(weights)
        let outcome = try InspectWorkflow.run(InspectSettings(checkpoint: weights))
        XCTAssertEqual(Set(outcome.report.checkpoint.entries.map(\.name)), names)
        let line = try XCTUnwrap(outcome.output.split(separator: "\n").first { $0.hasPrefix("tensors") })
        XCTAssertTrue(line.contains(" \(formatCount(names.count)) ("), String(line))
    }

    func testInspectJSONListsTheTensorsAndLeavesOutTheTableOnRequest() throws {
        var settings = InspectSettings(checkpoint: weights)
        settings.json = true
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(InspectWorkflow.run(settings).output.utf8)) as? [String: Any])
        XCTAssertEqual((json["tensors"] as? [Any])?.count, try headerNames(weights).count)
        settings.json = false
        settings.tensorTable = false
        XCTAssertFalse(try InspectWorkflow.run(settings).output.contains("OFFSETS"))
    }

    func testInspectOfAPipelineCoversEveryComponent() throws {
        let report = try InspectWorkflow.run(InspectSettings(checkpoint: pipeline)).report
        let components = Set(report.checkpoint.entries.map { String($0.name.prefix { $0 != "." }) })
        XCTAssertEqual(components, ["text_encoder", "unet", "vae"])
        XCTAssertEqual(report.checkpoint.entries.count, try ["text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors",
                                                              "vae/diffusion_pytorch_model.safetensors"]
            .map { try headerNames(pipeline + "/" + $0).count }.reduce(0, +))
    }

    func testVerifyWritesTheManifestSha256sumWrites() throws {
        let manifest = directory.appendingPathComponent("weights.sha256").path
        var settings = VerifySettings(checkpoint: weights)
        settings.writeManifest = manifest
        let outcome = try VerifyWorkflow.run(settings)
        XCTAssertFalse(outcome.hasProblems)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["sha256sum", weights]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let expected = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(try String(contentsOfFile: manifest, encoding: .utf8), expected)
        XCTAssertEqual(outcome.manifest, expected)
        XCTAssertTrue(outcome.output?.contains("NaN/Inf: none") == true)
    }

    func testVerifyReportsAManifestMismatch() throws {
        let manifest = directory.appendingPathComponent("wrong.sha256").path
        try (String(repeating: "0", count: 64) + "  " + weights + "\n").write(toFile: manifest, atomically: true, encoding: .utf8)
        var settings = VerifySettings(checkpoint: weights)
        settings.manifest = manifest
        let outcome = try VerifyWorkflow.run(settings)
        XCTAssertTrue(outcome.hasProblems)
        XCTAssertEqual(outcome.mismatches.map(\.path), [weights])
        XCTAssertTrue(outcome.output?.contains("MISMATCH (manifest has \(String(repeating: "0", count: 64)))") == true)
    }

    func testVerifyRefusesAManifestOntoTheCheckpoint() throws {
        var settings = VerifySettings(checkpoint: weights)
        settings.writeManifest = weights
        XCTAssertThrowsError(try VerifyWorkflow.run(settings)) { XCTAssertEqual(($0 as? TensorFormatError)?.code, .sameFile) }
    }

    func testDiffOfAFileWithItselfFindsNoDifference() throws {
        let outcome = try DiffWorkflow.run(DiffSettings(a: weights, b: weights))
        let count = try headerNames(weights).count
        XCTAssertFalse(outcome.report.differs)
        XCTAssertEqual(outcome.report.compared.filter(\.identical).count, count)
        XCTAssertTrue(outcome.output.hasSuffix("checkpoints match (\(count) of \(count) tensors identical)"), outcome.output)
    }

    func testDiffOfABF16CastDiffersUnlessToleratedAndDtypeIgnored() throws {
        let cast = directory.appendingPathComponent("bf16.safetensors").path
        var convert = ConvertSettings(input: weights, output: cast)
        convert.dtype = .bf16
        _ = try ConvertWorkflow.run(convert)
        var settings = DiffSettings(a: cast, b: weights)
        settings.json = true
        let outcome = try DiffWorkflow.run(settings)
        XCTAssertTrue(outcome.report.differs)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(outcome.output.utf8)) as? [String: Any])
        XCTAssertEqual(json["differs"] as? Bool, true)
        XCTAssertFalse((json["changed"] as? [Any] ?? []).isEmpty)
        settings.json = false
        settings.ignoreDtype = true
        settings.rtol = 1e-2
        settings.atol = 1e-6
        XCTAssertFalse(try DiffWorkflow.run(settings).report.differs)
    }
}
