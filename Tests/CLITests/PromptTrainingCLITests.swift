import Foundation
import TensorFormats
import XCTest

/// Prompt-driven training (formats/training.md): `--forget-prompt`, `--retain-prompts` and
/// `--retain-images` on the tiny random-init SD pipeline of fixtures/clip/tiny_pipeline.py, the text
/// encoder and VAE taken from the `--teacher` pipeline folder.
final class PromptTrainingCLITests: XCTestCase {
    /// Few, cheap steps: every sample and forget image is a 3-step DDIM draw at 8x8 latents.
    let quick = ["--steps", "2", "--inner-steps", "1", "--batch", "2", "--retain-sample-steps", "3", "--forget-sample-steps", "3", "-q"]

    func pipeline() throws -> String { try PromptPipelineCLITests.pipelines.get() + "/sd" }

    func weights(_ path: String) throws -> [String: [Float]] {
        let checkpoint = try Checkpoint.open(path)
        var out: [String: [Float]] = [:]
        for entry in checkpoint.entries { out[entry.name] = try checkpoint.floats(of: entry) }
        return out
    }

    func write(_ text: String, _ path: String) throws { try Data(text.utf8).write(to: URL(fileURLWithPath: path)) }

    func testPrunedStudentUnlearnsFromPromptsThroughAPipeAndSampleTakesTheResult() throws {
        let sd = try pipeline()
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let d = directory.path
        try write("a red car\na house by the sea\n", "\(d)/prompts.txt")
        let run = try CLI.shell("$DMS prune --ratio 0.5 \(sd) - -q | $DMS unlearn - \(d)/out.safetensors --teacher \(sd) --forget-prompt 'a cat' --forget-prompt 'a kitten' --retain-prompts \(d)/prompts.txt --steps 3 --inner-steps 1 --batch 2 --retain-sample-steps 3 --forget-sample-steps 3 --retain-samples 2 -q")
        XCTAssertEqual(run.status, 0, run.stderr)
        let cache = try Checkpoint.open("\(d)/out.safetensors.retain.safetensors")
        XCTAssertEqual(cache.entry(named: "x0")?.shape, [4, 4, 8, 8])
        XCTAssertEqual(cache.entry(named: "cond")?.shape.first, 4)
        let sample = try CLI.run(["sample", "--model", sd, "--unet", "\(d)/out.safetensors", "--prompt", "a cat", "--steps", "2",
                                  "--out", "\(d)/grid.png", "-q"])
        XCTAssertEqual(sample.status, 0, sample.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(d)/grid.png"))
    }

    func testForgetPromptAndRetainPromptsGiveTheWeightsOfTheirFiles() throws {
        let sd = try pipeline()
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let d = directory.path
        try write("a red car\r\n\r\nÅngström 猫\n", "\(d)/prompts.txt")
        XCTAssertEqual(try CLI.run(["prune", "--ratio", "0.5", sd, "\(d)/student.safetensors", "-q"]).status, 0)
        var run = try CLI.run(["encode-prompt", sd, "--prompt", "a cat", "--prompt", "Van Gogh", "\(d)/forget.safetensors", "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        run = try CLI.run(["unlearn", "\(d)/student.safetensors", "\(d)/a.safetensors", "--teacher", sd, "--forget-prompt", "a cat",
                           "--forget-prompt", "Van Gogh", "--retain-prompts", "\(d)/prompts.txt", "--retain-cache", "\(d)/cache.safetensors"] + quick)
        XCTAssertEqual(run.status, 0, run.stderr)
        run = try CLI.run(["unlearn", "\(d)/student.safetensors", "\(d)/b.safetensors", "--teacher", sd, "--forget", "\(d)/forget.safetensors",
                           "--data", "\(d)/cache.safetensors"] + quick)
        XCTAssertEqual(run.status, 0, run.stderr)
        let a = try weights("\(d)/a.safetensors"), b = try weights("\(d)/b.safetensors"), student = try weights("\(d)/student.safetensors")
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, student)
        XCTAssertEqual(try Checkpoint.open("\(d)/cache.safetensors").metadata?["dmsurgery.prompts"], #"["a red car","Ångström 猫"]"#)
        // erase and finetune take the same options.
        run = try CLI.run(["erase", "\(d)/student.safetensors", "\(d)/e1.safetensors", "--teacher", sd, "--forget-prompt", "a cat",
                           "--steps", "2", "--batch", "2", "--forget-sample-steps", "3", "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(try CLI.run(["encode-prompt", sd, "--prompt", "a cat", "\(d)/cat.safetensors", "-q"]).status, 0)
        run = try CLI.run(["erase", "\(d)/student.safetensors", "\(d)/e2.safetensors", "--teacher", sd, "--forget", "\(d)/cat.safetensors",
                           "--steps", "2", "--batch", "2", "--forget-sample-steps", "3", "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(try weights("\(d)/e1.safetensors"), try weights("\(d)/e2.safetensors"))
        run = try CLI.run(["finetune", "\(d)/student.safetensors", "\(d)/f1.safetensors", "--teacher", sd, "--retain-prompts", "\(d)/prompts.txt",
                           "--retain-sample-steps", "3", "--steps", "2", "--batch", "2", "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        run = try CLI.run(["finetune", "\(d)/student.safetensors", "\(d)/f2.safetensors", "--teacher", sd,
                           "--data", "\(d)/f1.safetensors.retain.safetensors", "--steps", "2", "--batch", "2", "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(try weights("\(d)/f1.safetensors"), try weights("\(d)/f2.safetensors"))
    }

    func testResumeWithOtherPromptsIsRefusedNamingThePrompts() throws {
        let sd = try pipeline()
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let d = directory.path
        try write("a red car\n", "\(d)/p1.txt")
        try write("a blue car\n", "\(d)/p2.txt")
        XCTAssertEqual(try CLI.run(["prune", "--ratio", "0.5", sd, "\(d)/student.safetensors", "-q"]).status, 0)
        let base = ["unlearn", "\(d)/student.safetensors", "\(d)/out.safetensors", "--teacher", sd]
        var run = try CLI.run(base + ["--forget-prompt", "a cat", "--retain-prompts", "\(d)/p1.txt", "--checkpoint-every", "1"] + quick)
        XCTAssertEqual(run.status, 0, run.stderr)
        run = try CLI.run(base + ["--forget-prompt", "a dog", "--retain-prompts", "\(d)/p1.txt", "--resume"] + quick)
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("run-mismatch") && run.stderr.contains("inputs.forgetPrompts"), run.stderr)
        run = try CLI.run(base + ["--forget-prompt", "a cat", "--retain-prompts", "\(d)/p2.txt", "--resume"] + quick)
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("run-mismatch") && run.stderr.contains("inputs.retainPrompts"), run.stderr)
        run = try CLI.run(base + ["--forget-prompt", "a cat", "--retain-prompts", "\(d)/p1.txt", "--resume", "--steps", "3"] + quick.dropFirst(2))
        XCTAssertEqual(run.status, 0, run.stderr)
    }

    func testRetainImagesAreEncodedByTheVAEWithTheirSidecarPrompts() throws {
        let sd = try pipeline()
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let d = directory.path
        let made = try CLI.shell("mkdir \(d)/images && python3 -c \"from PIL import Image; import numpy as np; r=np.random.default_rng(0); [Image.fromarray(r.integers(0,256,(32,24,3),dtype=np.uint8)).save('\(d)/images/%d.png' % i) for i in range(3)]\"")
        XCTAssertEqual(made.status, 0, made.stderr)
        try write("one\ntwo\nthree\n", "\(d)/images/prompts.txt")
        XCTAssertEqual(try CLI.run(["prune", "--ratio", "0.5", sd, "\(d)/student.safetensors", "-q"]).status, 0)
        var run = try CLI.run(["finetune", "\(d)/student.safetensors", "\(d)/out.safetensors", "--teacher", sd, "--retain-images", "\(d)/images",
                               "--steps", "2", "--batch", "2", "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let cache = try Checkpoint.open("\(d)/out.safetensors.retain.safetensors")
        XCTAssertEqual(cache.entry(named: "x0")?.shape, [3, 4, 16, 12])
        XCTAssertEqual(cache.metadata?["dmsurgery.prompts"], #"["one","two","three"]"#)
        // diffusers' VAE on the same pixels: the posterior mean times scaling_factor.
        let reference = try CLI.shell("""
            python3 -c "
            import torch, numpy as np; from PIL import Image; from diffusers import AutoencoderKL; from safetensors.torch import load_file
            vae = AutoencoderKL.from_pretrained('\(sd)/vae').eval()
            x = torch.stack([torch.from_numpy(np.asarray(Image.open('\(d)/images/%d.png' % i), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1) for i in range(3)])
            with torch.no_grad(): z = vae.encode(x).latent_dist.mean * vae.config.scaling_factor
            got = load_file('\(d)/out.safetensors.retain.safetensors')['x0']
            print(float((got - z).abs().max() / z.abs().max()))"
            """)
        XCTAssertEqual(reference.status, 0, reference.stderr)
        XCTAssertLessThan(Double(String(decoding: reference.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 1, 1e-4)
        // One prompt short: refused naming the sidecar.
        try write("one\ntwo\n", "\(d)/images/prompts.txt")
        run = try CLI.run(["finetune", "\(d)/student.safetensors", "\(d)/o2.safetensors", "--teacher", sd, "--retain-images", "\(d)/images", "--steps", "1"])
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("\(d)/images/prompts.txt: count-mismatch"), run.stderr)
    }

    func testHostilePromptAndImageInputsExitTwoNamingFileAndRule() throws {
        let sd = try pipeline()
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let d = directory.path
        XCTAssertEqual(try CLI.run(["prune", "--ratio", "0.5", sd, "\(d)/student.safetensors", "-q"]).status, 0)
        let base = ["unlearn", "\(d)/student.safetensors", "\(d)/out.safetensors", "--forget-prompt", "a cat", "--steps", "1"]
        try Data([0x63, 0x61, 0x66, 0xE9, 0x0A]).write(to: URL(fileURLWithPath: "\(d)/latin1.txt"))
        var run = try CLI.run(base + ["--teacher", sd, "--retain-prompts", "\(d)/latin1.txt"])
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("\(d)/latin1.txt: prompts-not-utf8"), run.stderr)
        try write("\n\r\n\n", "\(d)/empty.txt")
        run = try CLI.run(base + ["--teacher", sd, "--retain-prompts", "\(d)/empty.txt"])
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("\(d)/empty.txt: empty-data"), run.stderr)
        // A VAE with 3 latent channels for a 4-channel UNet.
        XCTAssertEqual(try CLI.shell("cp -r \(sd) \(d)/pipe && python3 -c \"from diffusers import AutoencoderKL; import torch; torch.manual_seed(0); AutoencoderKL.from_config(AutoencoderKL.load_config('\(sd)/vae'), latent_channels=3).save_pretrained('\(d)/pipe/vae')\" && mkdir \(d)/images && python3 -c \"from PIL import Image; Image.new('RGB', (16, 16)).save('\(d)/images/a.png'); Image.new('RGB', (18, 16)).save('\(d)/odd.png')\"").status, 0)
        run = try CLI.run(base + ["--teacher", "\(d)/pipe", "--retain-images", "\(d)/images"])
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("\(d)/pipe/vae/config.json: invalid-config"), run.stderr)
        // 18 pixels wide: not a multiple of the VAE's and UNet's joint factor.
        XCTAssertEqual(try CLI.shell("mv \(d)/odd.png \(d)/images/b.png").status, 0)
        run = try CLI.run(base + ["--teacher", sd, "--retain-images", "\(d)/images"])
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("\(d)/images/b.png: bad-shape"), run.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(d)/out.safetensors"))
        // Neither or both sources, or prompts without a pipeline teacher: usage errors.
        run = try CLI.run(["unlearn", "\(d)/student.safetensors", "\(d)/out.safetensors", "--teacher", sd, "--forget-prompt", "a", "--forget", "\(d)/x", "--data", "\(d)/y"])
        XCTAssertEqual(run.status, 64)
        run = try CLI.run(["finetune", "\(d)/student.safetensors", "\(d)/out.safetensors", "--retain-prompts", "\(d)/empty.txt"])
        XCTAssertEqual(run.status, 64)
        // A teacher that is a bare UNet has no text encoder to encode prompts with.
        try write("a red car\n", "\(d)/p.txt")
        run = try CLI.run(["finetune", "\(d)/student.safetensors", "\(d)/out.safetensors", "--teacher", "\(d)/student.safetensors",
                           "--retain-prompts", "\(d)/p.txt", "--steps", "1"])
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("\(d)/student.safetensors: model-bad-config"), run.stderr)
    }
}
