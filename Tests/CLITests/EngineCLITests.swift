import Foundation
import TensorFormats
import XCTest

/// forward, bench and sample through the binary, against diffusers' own outputs (fixtures/engine).
final class EngineCLITests: XCTestCase {
    private func maxRelativeError(_ got: [Float], _ want: [Float]) -> Float {
        let scale = want.map(abs).max() ?? 1
        return zip(got, want).map { abs($0 - $1) }.max().map { $0 / max(scale, 1e-12) } ?? 0
    }

    func testForwardThroughAPipeMatchesDiffusers() throws {
        for name in ["cond_small", "ddpm_small", "cond_pruned"] {
            let model = CLI.fixture("engine/\(name)")
            let io = CLI.fixture("engine/\(name)/io.safetensors")
            // The model travels through a pipe as one file carrying its config.
            let result = try CLI.shell("$DMS convert \(model) - -q | $DMS forward --model - --inputs \(io) --output - -q")
            XCTAssertEqual(result.status, 0, "\(name): \(result.stderr)")
            let output = try Checkpoint.openStream(DataSource(result.stdout), name: "-").withRandomAccess()
            let expected = try Checkpoint.open(io)
            let error = maxRelativeError(try output.floats(named: "sample"), try expected.floats(named: "out.sample"))
            XCTAssertLessThanOrEqual(error, 1e-4, name)
        }
    }

    func testBackwardGradientsMatchDiffusers() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("grads.safetensors").path
        let model = CLI.fixture("engine/cond_small")
        let result = try CLI.run(["forward", "--model", model, "--inputs", model + "/io.safetensors", "--output", out, "--backward", "-q"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let got = try Checkpoint.open(out)
        let want = try Checkpoint.open(model + "/grads.safetensors")
        var compared = 0
        for entry in want.entries where entry.name.hasPrefix("grad.") && got.entry(named: entry.name) != nil {
            let expected = try want.floats(of: entry)
            guard (expected.map(abs).max() ?? 0) > 1e-6 else { continue }
            XCTAssertLessThanOrEqual(maxRelativeError(try got.floats(named: entry.name), expected), 1e-3, entry.name)
            compared += 1
        }
        XCTAssertGreaterThan(compared, 50)
    }

    func testUnsupportedConfigsAndBadInputsGiveOneLineNamingFileAndKey() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = CLI.fixture("engine/cond_small")
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: source + "/config.json"))) as? [String: Any])
        config["resnet_time_scale_shift"] = "scale_shift"
        try JSONSerialization.data(withJSONObject: config).write(to: directory.appendingPathComponent("config.json"))
        try FileManager.default.copyItem(atPath: source + "/diffusion_pytorch_model.safetensors",
                                         toPath: directory.appendingPathComponent("diffusion_pytorch_model.safetensors").path)
        let out = directory.path + "-out.safetensors"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let refused = try CLI.run(["forward", "--model", directory.path, "--inputs", source + "/io.safetensors", "--output", out])
        XCTAssertEqual(refused.status, 2)
        XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, refused.stderr)
        XCTAssertTrue(refused.stderr.contains(directory.path) && refused.stderr.contains("unsupported-config: resnet_time_scale_shift"), refused.stderr)
        let wrongInputs = CLI.fixture("engine/ddpm_small/io.safetensors")
        let missing = try CLI.run(["forward", "--model", source, "--inputs", wrongInputs, "--output", out])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains(wrongInputs) && missing.stderr.contains("'encoder_hidden_states'"), missing.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    func testBenchTrainStepReportsSecondsPerStep() throws {
        let result = try CLI.run(["bench", "train-step", "--model", CLI.fixture("engine/ddpm_small"), "--batch", "2", "--steps", "1", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
        XCTAssertGreaterThan(object["seconds_per_step"] as? Double ?? 0, 0)
    }

    func testBenchReportsTheBLASCoreAndTheForcedKernelSet() throws {
        setenv("DMSURGERY_KERNELS", "portable", 1)
        defer { unsetenv("DMSURGERY_KERNELS") }
        let result = try CLI.run(["bench", "forward", "--model", CLI.fixture("engine/ddpm_small"), "--steps", "1", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
        XCTAssertEqual(object["kernels"] as? String, "portable")
        XCTAssertFalse((object["blas_core"] as? String ?? "").isEmpty)
        XCTAssertTrue(["library", "user", "engine", "library-fixed"].contains(object["blas_core_origin"] as? String ?? ""))
    }

    func testSampleWritesAPNGGrid() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let png = directory.appendingPathComponent("grid.png").path
        let help = try CLI.run(["sample", "--help"])
        XCTAssertEqual(help.status, 0)
        let result = try CLI.run(["sample", "--model", CLI.fixture("engine/ddpm_small"), "--steps", "2", "--out", png, "-q"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: png))
        XCTAssertEqual(Array(bytes.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    }
}
