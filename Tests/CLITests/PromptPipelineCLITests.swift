import Foundation
import TensorFormats
import XCTest

/// `encode-prompt` and `vae` against diffusers 0.42.1 on tiny random-init pipelines built by
/// fixtures/clip/tiny_pipeline.py (real CLIP vocabulary; saved by transformers 5, so tokenizer.json).
final class PromptPipelineCLITests: XCTestCase {
    static let pipelines: Result<String, Error> = Result {
        try CLI.requirePython("import diffusers, transformers, tokenizers")
        let root = try CLI.temporaryDirectory().path
        for kind in ["sd", "sdxl"] {
            let built = try CLI.shell("python3 fixtures/clip/tiny_pipeline.py build \(root)/\(kind) \(kind)")
            guard built.status == 0 else { throw NSError(domain: "tiny_pipeline.py: \(built.stderr)", code: 1) }
        }
        return root
    }

    func floats(_ path: String) throws -> [String: (shape: [Int], data: [Float])] {
        let checkpoint = try Checkpoint.open(path)
        var out: [String: (shape: [Int], data: [Float])] = [:]
        for entry in checkpoint.entries { out[entry.name] = (entry.shape, try checkpoint.floats(of: entry)) }
        return out
    }

    func relativeMaxError(_ a: [Float], _ b: [Float]) -> Float {
        var diff: Float = 0, scale: Float = 0
        for (x, y) in zip(a, b) { diff = max(diff, abs(x - y)); scale = max(scale, abs(y)) }
        return a.count == b.count ? diff / max(scale, 1e-12) : .infinity
    }

    func testEncodePromptEqualsDiffusersEncodePromptForSDAndSDXL() throws {
        let root = try Self.pipelines.get()
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let prompts = ["a photo of a cat!", "in the style of Van Gogh", String(repeating: "ÅNGSTRÖM 猫 😀 ", count: 20), "It's   DON'T\tstop"]
        let promptsJSON = directory.appendingPathComponent("prompts.json").path
        try JSONEncoder().encode(prompts).write(to: URL(fileURLWithPath: promptsJSON))
        let promptFile = directory.appendingPathComponent("prompts.txt").path
        try Data(prompts.joined(separator: "\r\n").utf8).write(to: URL(fileURLWithPath: promptFile))
        for kind in ["sd", "sdxl"] {
            let expectedPath = directory.appendingPathComponent("\(kind)-expected.safetensors").path
            let reference = try CLI.shell("python3 fixtures/clip/tiny_pipeline.py encode \(root)/\(kind) \(promptsJSON) \(expectedPath)")
            XCTAssertEqual(reference.status, 0, reference.stderr)
            let out = directory.appendingPathComponent("\(kind).safetensors").path
            let run = try CLI.run(["encode-prompt", "\(root)/\(kind)", "--prompts", promptFile, out, "-q"])
            XCTAssertEqual(run.status, 0, run.stderr)
            let expected = try floats(expectedPath), got = try floats(out)
            let names = kind == "sd" ? ["cond", "uncond"] : ["cond", "uncond", "cond_pooled", "uncond_pooled"]
            XCTAssertEqual(Set(got.keys), Set(names), kind)
            for name in names {
                XCTAssertEqual(got[name]?.shape, expected[name]?.shape, "\(kind) \(name)")
                XCTAssertLessThan(relativeMaxError(got[name]?.data ?? [], expected[name]?.data ?? []), 1e-4, "\(kind) \(name)")
            }
            XCTAssertEqual(try Checkpoint.open(out).metadata?["dmsurgery.prompts"].flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) }, prompts)
        }
    }

    func testPromptFileThatIsNotUTF8ExitsTwoNamingTheFile() throws {
        let root = try Self.pipelines.get()
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let bad = directory.appendingPathComponent("latin1.txt").path
        try Data([0x63, 0x61, 0x66, 0xE9, 0x0A]).write(to: URL(fileURLWithPath: bad))
        let run = try CLI.run(["encode-prompt", "\(root)/sd", "--prompts", bad, directory.appendingPathComponent("o.safetensors").path])
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("\(bad): prompts-not-utf8"), run.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("o.safetensors").path))
    }

    func testBrokenMergesInPipelineTokenizerExitsTwoNamingFileAndRule() throws {
        let root = try Self.pipelines.get()
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let pipeline = directory.appendingPathComponent("pipe").path
        XCTAssertEqual(try CLI.shell("cp -r \(root)/sd \(pipeline) && rm \(pipeline)/tokenizer/tokenizer.json && python3 -c \"import json; t=json.load(open('\(root)/sd/tokenizer/tokenizer.json')); json.dump(t['model']['vocab'], open('\(pipeline)/tokenizer/vocab.json', 'w'))\" && printf '#version: 0.2\\ni n\\nt h e\\n' > \(pipeline)/tokenizer/merges.txt").status, 0)
        let run = try CLI.run(["encode-prompt", pipeline, "--prompt", "a cat", directory.appendingPathComponent("o.safetensors").path])
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("\(pipeline)/tokenizer/merges.txt: tokenizer-bad-merges: line 3"), run.stderr)
    }

    func testVAEEncodeAndDecodeFilesMatchDiffusers() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let fixture = CLI.fixture("clip/vae/sd-like-expected.safetensors")
        let expected = try floats(fixture)
        let latents = directory.appendingPathComponent("latents.safetensors").path
        var run = try CLI.run(["vae", "encode", CLI.fixture("clip/vae/sd-like"), fixture, latents, "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertLessThan(relativeMaxError(try floats(latents)["latents"]!.data, expected["latents"]!.data), 1e-4)
        // decode reads `latents`: feed it diffusers' decode input under that name.
        let input = directory.appendingPathComponent("in.safetensors").path
        try SafetensorsWriter.writeFloats([("latents", expected["decode_latents"]!.shape, expected["decode_latents"]!.data)], to: input)
        let images = directory.appendingPathComponent("images.safetensors").path
        run = try CLI.run(["vae", "decode", CLI.fixture("clip/vae/sd-like"), input, images, "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertLessThan(relativeMaxError(try floats(images)["images"]!.data, expected["decoded"]!.data), 1e-4)
        // PNG out, then PNG in: the grid decodes back to an image the encoder takes.
        let png = directory.appendingPathComponent("grid.png").path
        run = try CLI.run(["vae", "decode", CLI.fixture("clip/vae/sd-like"), input, png, "--columns", "1", "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: png)).prefix(4), Data([0x89, 0x50, 0x4E, 0x47]))
        let cropped = directory.appendingPathComponent("one.safetensors").path
        run = try CLI.run(["vae", "encode", CLI.fixture("clip/vae/sd-like"), png, cropped, "--sample", "--seed", "3", "-q"])
        // 2 images of 32x24 stacked with a 1-pixel gap: 65 rows, not a multiple of 2.
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("model-bad-input"), run.stderr)
    }

    func testVAESampleIsReproducibleBySeed() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let fixture = CLI.fixture("clip/vae/sd-like-expected.safetensors")
        var outputs: [[Float]] = []
        for (index, seed) in ["4", "4", "5"].enumerated() {
            let out = directory.appendingPathComponent("\(index).safetensors").path
            let run = try CLI.run(["vae", "encode", CLI.fixture("clip/vae/sd-like"), fixture, out, "--sample", "--seed", seed, "-q"])
            XCTAssertEqual(run.status, 0, run.stderr)
            outputs.append(try floats(out)["latents"]!.data)
        }
        XCTAssertEqual(outputs[0], outputs[1])
        XCTAssertNotEqual(outputs[0], outputs[2])
    }

    /// Two prompts (and their JSON file for the Python reference) and seeded initial latents [2, 4, 8, 8]
    /// in `directory`, for the sample-parity tests.
    private static func twoPromptsAndNoise(in directory: URL, seed: UInt32) throws -> (prompts: [String], json: String, noise: String) {
        let prompts = ["a photo of a cat!", "in the style of Van Gogh"]
        let promptsJSON = directory.appendingPathComponent("prompts.json").path
        try JSONEncoder().encode(prompts).write(to: URL(fileURLWithPath: promptsJSON))
        var values: [Float] = []
        var state = seed
        for _ in 0..<(2 * 4 * 8 * 8) {
            state = state &* 1_664_525 &+ 1_013_904_223
            values.append(Float(Int(state >> 8) % 2001 - 1000) / 500)
        }
        let noise = directory.appendingPathComponent("noise.safetensors").path
        try SafetensorsWriter.writeFloats([("latents", [2, 4, 8, 8], values)], to: noise)
        return (prompts, promptsJSON, noise)
    }

    func testLatentSampleFromGivenNoiseMatchesStableDiffusionPipeline() throws {
        let root = try Self.pipelines.get()
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (prompts, promptsJSON, noise) = try Self.twoPromptsAndNoise(in: directory, seed: 12345)
        let expectedPath = directory.appendingPathComponent("expected.safetensors").path
        let reference = try CLI.shell("python3 fixtures/clip/tiny_pipeline.py sample \(root)/sd \(promptsJSON) \(noise) 4 7.5 \(expectedPath)")
        XCTAssertEqual(reference.status, 0, reference.stderr)
        let saved = directory.appendingPathComponent("final.safetensors").path
        let png = directory.appendingPathComponent("grid.png").path
        // No --count: the image count comes from the latents' batch, as diffusers takes it.
        let run = try CLI.run(["sample", "--model", "\(root)/sd", "--prompt", prompts[0], "--prompt", prompts[1],
                               "--steps", "4", "--guidance", "7.5", "--latents", noise, "--save-latents", saved, "--out", png, "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertLessThan(relativeMaxError(try floats(saved)["latents"]!.data, try floats(expectedPath)["latents"]!.data), 1e-3)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: png)).prefix(4), Data([0x89, 0x50, 0x4E, 0x47]))
        // The same UNet as a single file through --unet (a student's form): still the pipeline's scheduler,
        // so the same latents to the bit (no scheduler_config.json lies beside the file).
        let single = directory.appendingPathComponent("unet.safetensors").path
        XCTAssertEqual(try CLI.run(["convert", "\(root)/sd/unet", single, "-q"]).status, 0)
        let viaFile = directory.appendingPathComponent("final-unet.safetensors").path
        let second = try CLI.run(["sample", "--model", "\(root)/sd", "--unet", single, "--prompt", prompts[0], "--prompt", prompts[1],
                                  "--steps", "4", "--guidance", "7.5", "--latents", noise, "--save-latents", viaFile, "--out", png, "-q"])
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertEqual(try floats(viaFile)["latents"]!.data, try floats(saved)["latents"]!.data)
    }

    /// SDXL: both encoders' penultimate states, the second's pooled projection (zeros for the empty
    /// negative prompt, force_zeros_for_empty_prompt), the default time ids and the text_time UNet reach
    /// StableDiffusionXLPipeline's final latents with guidance.
    func testSDXLLatentSampleFromGivenNoiseMatchesStableDiffusionXLPipeline() throws {
        let root = try Self.pipelines.get()
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (prompts, promptsJSON, noise) = try Self.twoPromptsAndNoise(in: directory, seed: 2816)
        let expectedPath = directory.appendingPathComponent("expected.safetensors").path
        let negative = "blurry, low quality"
        let reference = try CLI.shell("python3 fixtures/clip/tiny_pipeline.py sample \(root)/sdxl \(promptsJSON) \(noise) 4 5.0 \(expectedPath) '\(negative)'")
        XCTAssertEqual(reference.status, 0, reference.stderr)
        let saved = directory.appendingPathComponent("final.safetensors").path
        let png = directory.appendingPathComponent("grid.png").path
        let run = try CLI.run(["sample", "--model", "\(root)/sdxl", "--prompt", prompts[0], "--prompt", prompts[1],
                               "--steps", "4", "--guidance", "5", "--latents", noise, "--save-latents", saved, "--out", png, "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let error = relativeMaxError(try floats(saved)["latents"]!.data, try floats(expectedPath)["latents"]!.data)
        XCTAssertLessThan(error, 1e-3)
        print("SDXL sample: final latents relative max error \(error)")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: png)).prefix(4), Data([0x89, 0x50, 0x4E, 0x47]))
        // A negative prompt: its own penultimate states and pooled projection instead of zeros.
        let run2 = try CLI.run(["sample", "--model", "\(root)/sdxl", "--prompt", prompts[0], "--prompt", prompts[1], "--negative-prompt", negative,
                                "--steps", "4", "--guidance", "5", "--latents", noise, "--save-latents", saved + ".negative", "--out", png + ".negative", "-q"])
        XCTAssertEqual(run2.status, 0, run2.stderr)
        let expected = try floats(expectedPath)
        XCTAssertLessThan(relativeMaxError(try floats(saved + ".negative")["latents"]!.data, expected["latents_negative"]!.data), 1e-3)
        XCTAssertGreaterThan(relativeMaxError(expected["latents"]!.data, expected["latents_negative"]!.data), 1e-3)

        // The refiner (text_encoder_2 only, requires_aesthetics_score) is refused by name, nothing written.
        let refiner = directory.appendingPathComponent("refiner").path
        let made = try CLI.shell("""
            cp -r \(root)/sdxl \(refiner) && rm -r \(refiner)/text_encoder \(refiner)/tokenizer && \
            sed -i 's/"force_zeros_for_empty_prompt": true/"requires_aesthetics_score": true/' \(refiner)/model_index.json
            """)
        XCTAssertEqual(made.status, 0, made.stderr)
        let out = directory.appendingPathComponent("refiner.png").path
        let refused = try CLI.run(["sample", "--model", refiner, "--prompt", "a cat", "--steps", "1", "--out", out])
        XCTAssertEqual(refused.status, 2, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("SDXL-Refiner") && refused.stderr.contains("model-unsupported"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    func testLatentSampleIsReproducibleBySeedAndRefusesMismatchedVAE() throws {
        let root = try Self.pipelines.get()
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var grids: [Data] = []
        for index in 0..<2 {
            let png = directory.appendingPathComponent("\(index).png").path
            let run = try CLI.run(["sample", "--model", "\(root)/sd", "--prompt", "a cat", "--count", "2", "--steps", "2", "--seed", "7", "--out", png, "-q"])
            XCTAssertEqual(run.status, 0, run.stderr)
            grids.append(try Data(contentsOf: URL(fileURLWithPath: png)))
        }
        XCTAssertEqual(grids[0], grids[1])
        let pipeline = directory.appendingPathComponent("pipe").path
        XCTAssertEqual(try CLI.shell("cp -r \(root)/sd \(pipeline) && rm -r \(pipeline)/vae && cp -r \(CLI.fixture("clip/vae/shifted")) \(pipeline)/vae").status, 0)
        let run = try CLI.run(["sample", "--model", pipeline, "--prompt", "a cat", "--steps", "1", "--out", directory.appendingPathComponent("x.png").path])
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("\(pipeline)/vae/config.json: model-bad-config"), run.stderr)
    }

    func testLatentsThatDoNotFitThePromptsAndLatentOptionsOnPixelModelsAreRefused() throws {
        let root = try Self.pipelines.get()
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let png = directory.appendingPathComponent("x.png").path
        // Red team, issue 25 §9.6: latents of fewer than 4 dimensions trapped on `shape[2]` (exit 132).
        for (name, shape) in [("odd", [3, 4, 8, 8]), ("flat", [4, 8, 8]), ("two-dimensional", [2, 4]), ("channels", [2, 3, 8, 8])] {
            let path = directory.appendingPathComponent(name + ".safetensors").path
            try SafetensorsWriter.writeFloats([("latents", shape, [Float](repeating: 0.5, count: shape.reduce(1, *)))], to: path)
            let run = try CLI.run(["sample", "--model", "\(root)/sd", "--prompt", "a", "--prompt", "b", "--steps", "1", "--latents", path, "--out", png])
            XCTAssertEqual(run.status, 2, "\(name): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains("invalid-shape") && run.stderr.contains("latents"), run.stderr)
        }
        let odd = directory.appendingPathComponent("odd.safetensors").path
        for extra in [["--latents", odd], ["--save-latents", odd], ["--negative-prompt", "x"], ["--unet", CLI.fixture("default")]] {
            let run = try CLI.run(["sample", "--model", CLI.fixture("default"), "--steps", "1", "--out", png] + extra)
            XCTAssertEqual(run.status, 64, "\(extra): \(run.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: png))
    }
}
