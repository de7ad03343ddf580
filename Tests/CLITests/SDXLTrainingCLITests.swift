import Foundation
import TensorFormats
import XCTest

/// finetune, erase and unlearn on an SDXL-shaped student (engine/cond_sdxl) against an SDXL teacher
/// (training/sdxl/teacher): data files with the pooled embeddings and time ids, resume, and
/// prompt-driven runs through the tiny SDXL pipeline's two text encoders.
final class SDXLTrainingCLITests: XCTestCase {
    private var directory: URL!
    private let model = CLI.fixture("engine/cond_sdxl")
    private let teacher = CLI.fixture("training/sdxl/teacher")
    private let data = CLI.fixture("training/sdxl/data.safetensors")
    private let forget = CLI.fixture("training/sdxl/forget.safetensors")

    override func setUpWithError() throws { directory = try CLI.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private func weights(_ path: String) throws -> [String: [Float]] {
        let checkpoint = try Checkpoint.open(path)
        var out: [String: [Float]] = [:]
        for entry in checkpoint.entries { out[entry.name] = try checkpoint.floats(of: entry) }
        return out
    }

    func testFinetuneEraseAndUnlearnTrainAnSDXLStudentAndResumeToTheSameBytes() throws {
        var run = try CLI.run(["finetune", model, path("f.safetensors"), "--teacher", teacher, "--data", data, "--steps", "2", "--batch", "2",
                               "--uncond-prob", "0.5", "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertNotEqual(try weights(path("f.safetensors"))["add_embedding.linear_1.weight"], try weights(model + "/diffusion_pytorch_model.safetensors")["add_embedding.linear_1.weight"])
        run = try CLI.run(["forward", "--model", path("f.safetensors"), "--inputs", model + "/io.safetensors", "--output", path("o.safetensors"), "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        for method in ["esd", "ablation"] {
            run = try CLI.run(["erase", model, path("e-\(method).safetensors"), "--teacher", teacher, "--forget", forget, "--method", method,
                               "--steps", "2", "--batch", "2", "-q"])
            XCTAssertEqual(run.status, 0, method + ": " + run.stderr)
        }
        let unlearn = ["unlearn", model, "", "--teacher", teacher, "--data", data, "--forget", forget, "--inner-steps", "1", "--batch", "2", "-q"]
        func unlearnRun(_ out: String, _ extra: [String]) throws -> CLIResult {
            var args = unlearn
            args[2] = out
            return try CLI.run(args + extra)
        }
        XCTAssertEqual(try unlearnRun(path("full.safetensors"), ["--steps", "2"]).status, 0)
        XCTAssertEqual(try unlearnRun(path("part.safetensors"), ["--steps", "1", "--checkpoint-every", "1"]).status, 0)
        run = try unlearnRun(path("part.safetensors"), ["--steps", "2", "--resume"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(FileManager.default.contents(atPath: path("full.safetensors")), FileManager.default.contents(atPath: path("part.safetensors")))
        let training = try XCTUnwrap(try Checkpoint.open(path("full.safetensors")).metadata?["dmsurgery.training"])
        XCTAssertTrue(training.contains("\"command\":\"unlearn\""), training)

        // A data file without the added conditioning: one line naming file, rule and tensor, nothing written.
        run = try CLI.run(["finetune", model, path("bad.safetensors"), "--data", CLI.fixture("training/sdxl/bad/missing_cond_pooled.safetensors"), "--steps", "1"])
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("missing_cond_pooled.safetensors: missing-tensor") && run.stderr.contains("'cond_pooled'"), run.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad.safetensors")))
    }

    /// `--forget-prompt` and `--retain-images` on the tiny SDXL pipeline: the retain data made in
    /// memory holds what `encode-prompt` gives the same prompts (both text encoders, the pooled
    /// projection) and the time ids of the pictures' own size, and reading it back as `--data` gives
    /// the same weights.
    func testPromptDrivenRunsEncodeWithBothTextEncodersAndTimeIdsOfThePictures() throws {
        let sdxl = try PromptPipelineCLITests.pipelines.get() + "/sdxl"
        let d = directory.path
        let made = try CLI.shell("mkdir \(d)/images && python3 -c \"from PIL import Image; import numpy as np; r=np.random.default_rng(0); [Image.fromarray(r.integers(0,256,(32,24,3),dtype=np.uint8)).save('\(d)/images/%d.png' % i) for i in range(3)]\"")
        XCTAssertEqual(made.status, 0, made.stderr)
        try Data("one\ntwo\nthree\n".utf8).write(to: URL(fileURLWithPath: "\(d)/images/prompts.txt"))
        let common = ["--teacher", sdxl, "--forget-prompt", "a cat", "--steps", "2", "--inner-steps", "1", "--batch", "2", "--forget-sample-steps", "2", "-q"]
        var run = try CLI.run(["unlearn", sdxl + "/unet", path("a.safetensors"), "--retain-images", "\(d)/images", "--retain-cache", path("cache.safetensors")] + common)
        XCTAssertEqual(run.status, 0, run.stderr)
        run = try CLI.run(["encode-prompt", sdxl, "--prompt", "one", "--prompt", "two", "--prompt", "three", path("enc.safetensors"), "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let cache = try weights(path("cache.safetensors")), encoded = try weights(path("enc.safetensors"))
        XCTAssertEqual(cache["cond_pooled"], encoded["cond_pooled"])
        XCTAssertEqual(cache["uncond_pooled"], encoded["uncond_pooled"])
        XCTAssertEqual(cache["cond"], encoded["cond"])
        XCTAssertEqual(cache["time_ids"], Array([[Float]](repeating: [32, 24, 0, 0, 32, 24], count: 3).joined()))
        run = try CLI.run(["unlearn", sdxl + "/unet", path("b.safetensors"), "--data", path("cache.safetensors")] + common)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(try weights(path("a.safetensors")), try weights(path("b.safetensors")))
    }
}
