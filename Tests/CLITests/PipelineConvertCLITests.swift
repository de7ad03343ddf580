import Foundation
import XCTest

/// `convert PIPELINE OUT_FOLDER --dtype f16 --variant fp16` re-saves a whole pipeline: checked with
/// diffusers 0.42.1 offline (Tests/CLITests/pipeline_convert_check.py), which loads it with
/// `from_pretrained(..., variant="fp16")` and compares every tensor with the original cast by torch.
final class PipelineConvertCLITests: XCTestCase {
    private func requirePython() throws {
        try CLI.requirePython("import sys; sys.modules.setdefault(\"torchvision\", None); import diffusers, transformers, torch")
    }

    func testAnFP16VariantOfEveryFamilyLoadsInDiffusersWithTheOriginalTensorsCast() throws {
        try requirePython()
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = CLI.repository.appendingPathComponent("Tests/CLITests/pipeline_convert_check.py").path
        for family in ["sd1", "sdxl"] {
            // The fixtures are stored in f16: a plain f32 pipeline first, then its fp16 variant.
            let plain = directory.appendingPathComponent("\(family)-f32").path
            let toF32 = try CLI.run(["convert", CLI.fixture("ldm/\(family)"), plain, "--dtype", "f32", "-q"])
            XCTAssertEqual(toF32.status, 0, toF32.stderr)
            let out = directory.appendingPathComponent(family).path
            let run = try CLI.run(["convert", plain, out, "--dtype", "f16", "--variant", "fp16"])
            XCTAssertEqual(run.status, 0, run.stderr)
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/unet/diffusion_pytorch_model.fp16.safetensors"))
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/text_encoder/model.fp16.safetensors"))
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/unet/diffusion_pytorch_model.safetensors"))
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/scheduler/scheduler_config.json")),
                           try Data(contentsOf: URL(fileURLWithPath: CLI.fixture("ldm/\(family)/scheduler/scheduler_config.json"))))
            let check = try CLI.shell("python3 \(script) \(plain) \(out) fp16 2>/dev/null")
            XCTAssertEqual(check.status, 0, "\(family): \(String(decoding: check.stdout, as: UTF8.self))")
        }
    }

    func testTheVariantIsReadAsOnePipelineAndHoldsTheOriginalValuesInF16() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let plain = directory.appendingPathComponent("f32").path
        XCTAssertEqual(try CLI.run(["convert", CLI.fixture("ldm/sd1"), plain, "--dtype", "f32", "-q"]).status, 0)
        let out = directory.appendingPathComponent("fp16").path
        XCTAssertEqual(try CLI.run(["convert", plain, out, "--dtype", "f16", "--variant", "fp16", "-q"]).status, 0)
        let inspect = try CLI.run(["inspect", out, "--variant", "fp16", "--json"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: inspect.stdout) as? [String: Any])
        XCTAssertEqual((json["dtypes"] as? [String: Any]).map { $0.keys.sorted() }, ["F16"])
        XCTAssertNotNil(try CLI.run(["inspect", plain, "--json"]).stdout.range(of: Data("\"F32\"".utf8)))
        // The fixture's values are f16 already: f32 and back gives them exactly, the dtype change aside.
        let converted = out + "/unet/diffusion_pytorch_model.fp16.safetensors"
        XCTAssertEqual(try CLI.run(["diff", converted, CLI.fixture("ldm/sd1/unet/diffusion_pytorch_model.safetensors")]).status, 0)
        XCTAssertEqual(try CLI.run(["diff", converted, plain + "/unet/diffusion_pytorch_model.safetensors", "--ignore-dtype"]).status, 0)
        XCTAssertEqual(try CLI.run(["diff", converted, plain + "/unet/diffusion_pytorch_model.safetensors"]).status, 1)
    }

    func testAnOutputInsideTheInputPipelineIsRefusedBeforeAnythingIsWritten() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let copy = directory.appendingPathComponent("sd1").path
        try FileManager.default.copyItem(atPath: CLI.fixture("ldm/sd1"), toPath: copy)
        let run = try CLI.run(["convert", copy, copy + "/nested/fp16", "--dtype", "f16", "--variant", "fp16"])
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("output-is-input"), run.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: copy + "/nested"))
    }

    func testSelectionsDoNotApplyToAWholePipeline() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = try CLI.run(["convert", CLI.fixture("ldm/sd1"), directory.appendingPathComponent("out").path, "--only", "unet.*"])
        XCTAssertEqual(run.status, 64, run.stderr)
    }
}
