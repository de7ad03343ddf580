import Foundation
import TensorFormats
import XCTest

/// The SDXL UNet (text_time added conditioning) against diffusers itself, live: a random-init
/// SDXL-shaped model that no fixture holds, built by sdxl_unet_check.py, run by `forward --backward`,
/// and compared there with diffusers' float64 output and autograd gradients (inputs and weights).
final class SDXLCrossCheckTests: XCTestCase {
    override func setUpWithError() throws {
        try CLI.requirePython("import safetensors, torch, diffusers")
    }

    func testSDXLShapedUNetForwardAndBackwardMatchDiffusers() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = CLI.repository.appendingPathComponent("Tests/CLITests/sdxl_unet_check.py").path
        let made = try CLI.shell("python3 \(script) make \(directory.path)")
        XCTAssertEqual(made.status, 0, made.stderr)
        let model = directory.appendingPathComponent("model").path
        let io = directory.appendingPathComponent("io.safetensors").path
        let out = directory.appendingPathComponent("out.safetensors").path
        let forward = try CLI.run(["forward", "--model", model, "--inputs", io, "--output", out, "--backward", "-q"])
        XCTAssertEqual(forward.status, 0, forward.stderr)
        let check = try CLI.shell("python3 \(script) check \(directory.path)")
        let report = String(decoding: check.stdout, as: UTF8.self)
        XCTAssertEqual(check.status, 0, report + check.stderr)
        XCTAssertTrue(report.contains("input gradient"), report)
        print(report)

        // Without the added conditioning the SDXL UNet refuses its inputs, naming the missing one.
        let bare = directory.appendingPathComponent("bare.safetensors").path
        let refused = try CLI.run(["forward", "--model", model, "--inputs", bare, "--output", out + ".2"])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.stderr.contains("text_embeds") && refused.stderr.contains("bad-input"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".2"))
    }
}

/// The SDXL-shaped parity fixture through the command line, without Python: `forward --backward` reads
/// `text_embeds` and `time_ids` and writes their gradients; `bench forward` feeds an SDXL UNet its own.
final class SDXLEngineCLITests: XCTestCase {
    private func floats(_ path: String) throws -> [String: [Float]] {
        let checkpoint = try Checkpoint.open(path)
        var out: [String: [Float]] = [:]
        for entry in checkpoint.entries { out[entry.name] = try checkpoint.floats(of: entry) }
        return out
    }

    func testForwardAndBenchTakeTheAddedConditioning() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = CLI.fixture("engine/cond_sdxl")
        let out = directory.appendingPathComponent("out.safetensors").path
        let forward = try CLI.run(["forward", "--model", model, "--inputs", model + "/io.safetensors", "--output", out, "--backward", "-q"])
        XCTAssertEqual(forward.status, 0, forward.stderr)
        let got = try floats(out), io = try floats(model + "/io.safetensors"), grads = try floats(model + "/grads.safetensors")
        XCTAssertLessThanOrEqual(relativeMaxError(got["sample"], io["out.sample"]), 1e-4)
        for name in ["grad.text_embeds", "grad.time_ids", "grad.add_embedding.linear_1.weight"] {
            XCTAssertLessThanOrEqual(relativeMaxError(got[name], grads[name]), 1e-4, name)
        }
        let bench = try CLI.run(["bench", "forward", "--model", model, "--steps", "1", "--json"])
        XCTAssertEqual(bench.status, 0, bench.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: bench.stdout) as? [String: Any])
        XCTAssertGreaterThan(object["seconds_per_forward"] as? Double ?? 0, 0)
    }
}
