import Foundation
import TensorFormats
import XCTest

/// `convert … --to onnx` (formats/onnx.md) checked by the reference tools (Tests/CLITests/onnx_check.py):
/// onnx's full checker passes, ONNX Runtime's CPU provider matches dmsurgery's own forward on dense,
/// width-pruned, depth-pruned and linear-projection UNets, and diffusers' OnnxStableDiffusionPipeline on
/// the exported folder reaches the latents `dmsurgery sample` reaches.
final class ONNXExportCLITests: XCTestCase {
    static let tools: Result<Void, Error> = Result {
        let probe = try CLI.shell("python3 -c 'import onnx, onnxruntime, diffusers, safetensors'")
        if probe.status != 0 {
            let install = try CLI.shell("python3 -m pip install -q -r fixtures/requirements.txt")
            guard install.status == 0 else { throw NSError(domain: install.stderr, code: 1) }
        }
    }

    private var directory: URL!

    override func setUpWithError() throws {
        try Self.tools.get()
        directory = try CLI.temporaryDirectory()
    }

    override func tearDownWithError() throws {
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private func floats(_ path: String) throws -> [String: [Float]] {
        let checkpoint = try Checkpoint.open(path)
        var out: [String: [Float]] = [:]
        for entry in checkpoint.entries { out[entry.name] = try checkpoint.floats(of: entry) }
        return out
    }

    private func fileSize(_ path: String) throws -> Int {
        try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int, path)
    }

    private func relativeMaxError(_ a: [Float], _ b: [Float]) -> Float {
        var diff: Float = 0, scale: Float = 0
        for (x, y) in zip(a, b) { diff = max(diff, abs(x - y)); scale = max(scale, abs(y)) }
        return a.count == b.count && !a.isEmpty ? diff / max(scale, 1e-12) : .infinity
    }

    /// Exports `model`, runs it on ONNX Runtime and with `dmsurgery forward` on the same inputs.
    private func assertUNetMatchesForward(_ model: String, inputs: String, label: String,
                                          extra: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws {
        let onnx = path("\(label).onnx")
        let export = try CLI.run(["convert", model, onnx, "-q"] + extra)
        XCTAssertEqual(export.status, 0, "\(label): \(export.stderr)", file: file, line: line)
        let ort = path("\(label).ort.safetensors")
        let check = try CLI.shell("python3 Tests/CLITests/onnx_check.py run \(onnx) \(inputs) \(ort)")
        XCTAssertEqual(check.status, 0, "\(label): \(check.stderr)", file: file, line: line)
        let own = path("\(label).forward.safetensors")
        let forward = try CLI.run(["forward", "--model", model, "--inputs", inputs, "--output", own, "-q"])
        XCTAssertEqual(forward.status, 0, "\(label): \(forward.stderr)", file: file, line: line)
        let got = try XCTUnwrap(try floats(ort)["out_sample"], label)
        let want = try XCTUnwrap(try floats(own)["sample"], label)
        XCTAssertLessThan(relativeMaxError(got, want), 1e-4, label, file: file, line: line)
        // The file describes itself (its config in the dmsurgery.config metadata_props entry) and reads
        // back as the weights it came from: dmsurgery's forward on it gives the same bytes.
        let back = path("\(label).back.safetensors")
        let again = try CLI.run(["forward", "--model", onnx, "--inputs", inputs, "--output", back, "-q"])
        XCTAssertEqual(again.status, 0, "\(label): \(again.stderr)", file: file, line: line)
        XCTAssertEqual(try floats(back)["sample"], want, label, file: file, line: line)
    }

    /// An SDXL UNet takes the added conditioning under optimum's SDXL input names, and ONNX Runtime on
    /// them matches the engine's forward (text_embeds [B,20], time_ids [B,6] of the parity fixture).
    func testSDXLUNetTakesTextEmbedsAndTimeIdsAndMatchesTheEngineOnONNXRuntime() throws {
        let model = CLI.fixture("engine/cond_sdxl")
        try assertUNetMatchesForward(model, inputs: model + "/io.safetensors", label: "cond_sdxl")
        let names = try CLI.shell("python3 -c \"import onnx; m = onnx.load('\(path("cond_sdxl.onnx"))', load_external_data=False); print([(i.name, [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim]) for i in m.graph.input])\"")
        XCTAssertEqual(names.status, 0, names.stderr)
        XCTAssertEqual(String(decoding: names.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines),
                       "[('sample', ['batch', 4, 'height', 'width']), ('timestep', ['timestep_batch']), ('encoder_hidden_states', ['batch', 'sequence', 16]), ('text_embeds', ['batch', 20]), ('time_ids', ['batch', 6])]")
    }

    func testUNetsDensePrunedAndDepthPrunedMatchTheEngineOnONNXRuntime() throws {
        let io = CLI.fixture("engine/cond_small/io.safetensors")
        // Dense with 1x1-conv projections, linear projections and per-block heads, a pruned fixture, DDPM.
        for name in ["cond_small", "cond_heads", "cond_pruned"] {
            try assertUNetMatchesForward(CLI.fixture("engine/\(name)"), inputs: CLI.fixture("engine/\(name)/io.safetensors"), label: name)
        }
        try assertUNetMatchesForward(CLI.fixture("engine/ddpm_small"), inputs: CLI.fixture("engine/ddpm_small/io.safetensors"), label: "ddpm_small")
        // Students made by prune: widths (--ratio) and blocks (--depth), exported as they are.
        let width = path("width.safetensors")
        XCTAssertEqual(try CLI.run(["prune", "--ratio", "0.5", CLI.fixture("engine/cond_small"), width, "-q"]).status, 0)
        try assertUNetMatchesForward(width, inputs: io, label: "width")
        let depth = path("depth") + "/"
        XCTAssertEqual(try CLI.run(["prune", "--depth", "small", CLI.fixture("depth/cond_sdlike/teacher"), depth, "-q"]).status, 0)
        try assertUNetMatchesForward(depth, inputs: io, label: "depth")
        // Fixed shapes: one latent of 8x8 with 77 tokens, as the file declares them.
        var values: [Float] = []
        var state: UInt32 = 99
        for _ in 0..<(4 * 8 * 8 + 77 * 12) {
            state = state &* 1_664_525 &+ 1_013_904_223
            values.append(Float(Int(state >> 8) % 2001 - 1000) / 1000)
        }
        let fixed = path("fixed.safetensors")
        try SafetensorsWriter.writeFloats([("sample", [1, 4, 8, 8], Array(values[0..<256])), ("timestep", [1], [321]),
                                           ("encoder_hidden_states", [1, 77, 12], Array(values[256...]))], to: fixed)
        try assertUNetMatchesForward(width, inputs: fixed, label: "static", extra: ["--static", "1x8x8"])
        XCTAssertEqual(try CLI.run(["convert", width, path("bad.onnx"), "--static", "1x8", "-q"]).status, 64)
        XCTAssertEqual(try CLI.run(["convert", width, path("bad.safetensors"), "--static", "1x8x8", "-q"]).status, 64)
        // Options that do not fit the input: one line, exit 2, nothing written.
        for extra in [["--part", "encoder"], ["--unet", width]] {
            let run = try CLI.run(["convert", width, path("bad.onnx"), "-q"] + extra)
            XCTAssertEqual(run.status, 2, run.stderr)
            XCTAssertTrue(run.stderr.contains("invalid-argument"), run.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad.onnx")))
        // --quant: ONNX Runtime's MatMulNBitsQuantizer writes the same blocks for the f32 file, and the
        // quantized model runs (int8 close to the engine; int4 on a tiny random model only bounded).
        for (quant, bits, bound) in [("int8", 8, Float(0.05)), ("int4", 4, Float(1))] {
            let model = path("width-\(quant).onnx")
            let export = try CLI.run(["convert", width, model, "--quant", quant, "--block-size", "32", "-q"])
            XCTAssertEqual(export.status, 0, export.stderr)
            let blocks = try CLI.shell("python3 Tests/CLITests/onnx_check.py blocks \(path("width.onnx")) \(model) \(bits) 32")
            XCTAssertEqual(blocks.status, 0, blocks.stderr)
            XCTAssertGreaterThan(Int(String(decoding: blocks.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0, 50, quant)
            let out = path("width-\(quant).ort.safetensors")
            XCTAssertEqual(try CLI.shell("python3 Tests/CLITests/onnx_check.py run \(model) \(io) \(out)").status, 0)
            let error = relativeMaxError(try XCTUnwrap(try floats(out)["out_sample"]), try XCTUnwrap(try floats(path("width.forward.safetensors"))["sample"]))
            XCTAssertLessThan(error, bound, quant)
            XCTAssertLessThan(try fileSize(model), try fileSize(path("width.onnx")), quant)
        }
        XCTAssertEqual(try CLI.run(["convert", width, path("q.onnx"), "--quant", "q4_0", "-q"]).status, 64)
        XCTAssertEqual(try CLI.run(["convert", width, path("q.onnx"), "--quant", "int4", "--block-size", "48", "-q"]).status, 64)
        // Weights beside the model (the rule past 2 GB), forced on a small one.
        try assertUNetMatchesForward(width, inputs: io, label: "external", extra: ["--external-data"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("external.onnx_data")))
        XCTAssertLessThan(try fileSize(path("external.onnx")), 200_000)
    }

    func testPipelineFolderRunsInOnnxStableDiffusionPipelineToTheSampledLatents() throws {
        let root = try PromptPipelineCLITests.pipelines.get()
        let prompts = ["a photo of a cat!", "in the style of Van Gogh"]
        let promptsJSON = path("prompts.json")
        try JSONEncoder().encode(prompts).write(to: URL(fileURLWithPath: promptsJSON))
        var values: [Float] = []
        var state: UInt32 = 777
        for _ in 0..<(2 * 4 * 8 * 8) {
            state = state &* 1_664_525 &+ 1_013_904_223
            values.append(Float(Int(state >> 8) % 2001 - 1000) / 500)
        }
        let noise = path("noise.safetensors")
        try SafetensorsWriter.writeFloats([("latents", [2, 4, 8, 8], values)], to: noise)
        let folder = path("onnx") + "/"
        let export = try CLI.run(["convert", "\(root)/sd", folder, "--to", "onnx", "-q"])
        XCTAssertEqual(export.status, 0, export.stderr)
        for part in ["text_encoder", "unet", "vae_encoder", "vae_decoder"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder + part + "/model.onnx"), part)
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "tokenizer/tokenizer.json"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "scheduler/scheduler_config.json"))
        let expected = path("onnx.safetensors")
        let reference = try CLI.shell("python3 Tests/CLITests/onnx_check.py pipeline \(folder) \(promptsJSON) \(noise) 4 7.5 \(expected)")
        XCTAssertEqual(reference.status, 0, reference.stderr)
        let saved = path("final.safetensors")
        let run = try CLI.run(["sample", "--model", "\(root)/sd", "--prompt", prompts[0], "--prompt", prompts[1], "--count", "1",
                               "--steps", "4", "--guidance", "7.5", "--latents", noise, "--save-latents", saved, "--out", path("grid.png"), "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertLessThan(relativeMaxError(try XCTUnwrap(try floats(saved)["latents"]), try XCTUnwrap(try floats(expected)["latents"])), 1e-3)
    }
}

extension ONNXExportCLITests {
    func testTextEncoderAndVAEHalvesMatchTheEngine() throws {
        let root = try PromptPipelineCLITests.pipelines.get()
        // Text encoder: last_hidden_state against `encode-prompt` (cond), pooler_output against transformers.
        let prompts = ["a photo of a cat!", "in the style of Van Gogh"]
        let promptsJSON = path("prompts.json")
        try JSONEncoder().encode(prompts).write(to: URL(fileURLWithPath: promptsJSON))
        let text = path("text_encoder.onnx")
        var run = try CLI.run(["convert", "\(root)/sd/text_encoder", text, "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let ort = path("text.safetensors")
        let check = try CLI.shell("python3 Tests/CLITests/onnx_check.py text \(text) \(root)/sd \(promptsJSON) \(ort)")
        XCTAssertEqual(check.status, 0, check.stderr)
        let encoded = path("encoded.safetensors")
        run = try CLI.run(["encode-prompt", "\(root)/sd", encoded, "--prompt", prompts[0], "--prompt", prompts[1], "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let got = try floats(ort)
        XCTAssertLessThan(relativeMaxError(try XCTUnwrap(got["last_hidden_state"]), try XCTUnwrap(try floats(encoded)["cond"])), 1e-4)
        XCTAssertLessThan(relativeMaxError(try XCTUnwrap(got["pooler_output"]), try XCTUnwrap(got["reference_pooler_output"])), 1e-4)
        // Quantized (int8 projections and MLPs as MatMulNBits): it runs and stays close.
        run = try CLI.run(["convert", "\(root)/sd/text_encoder", path("text8.onnx"), "--quant", "int8", "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let quantized = try CLI.shell("python3 Tests/CLITests/onnx_check.py text \(path("text8.onnx")) \(root)/sd \(promptsJSON) \(path("text8.safetensors"))")
        XCTAssertEqual(quantized.status, 0, quantized.stderr)
        XCTAssertLessThan(relativeMaxError(try XCTUnwrap(try floats(path("text8.safetensors"))["last_hidden_state"]),
                                           try XCTUnwrap(got["last_hidden_state"])), 0.05)

        // VAE: the encoder's mean against `vae encode` (scaled latents), the decoder against `vae decode`.
        let vae = CLI.fixture("clip/vae/sd-like")
        let fixture = try floats(CLI.fixture("clip/vae/sd-like-expected.safetensors"))
        let scale: Float = 0.18215
        let inputs = path("vae-in.safetensors")
        let images = try XCTUnwrap(fixture["images"]), decodeLatents = try XCTUnwrap(fixture["decode_latents"])
        try SafetensorsWriter.writeFloats([("sample", [2, 3, 32, 24], images), ("images", [2, 3, 32, 24], images), ("latent_sample", [2, 4, 16, 12], decodeLatents.map { $0 / scale }),
                                           ("latents", [2, 4, 16, 12], decodeLatents)], to: inputs)
        XCTAssertEqual(try CLI.run(["convert", vae, path("vae.onnx"), "-q"]).status, 2, "a VAE file needs --part")
        for part in ["encoder", "decoder"] {
            let model = path("vae_\(part).onnx")
            run = try CLI.run(["convert", vae, model, "--part", part, "-q"])
            XCTAssertEqual(run.status, 0, run.stderr)
            let out = path("vae_\(part).ort.safetensors")
            let check = try CLI.shell("python3 Tests/CLITests/onnx_check.py run \(model) \(inputs) \(out)")
            XCTAssertEqual(check.status, 0, check.stderr)
            let own = path("vae_\(part).own.safetensors")
            run = try CLI.run(["vae", part == "encoder" ? "encode" : "decode", vae, inputs, own, "-q"])
            XCTAssertEqual(run.status, 0, run.stderr)
            if part == "encoder" {
                let latents = try XCTUnwrap(try floats(out)["latent_sample"]).map { $0 * scale }
                XCTAssertLessThan(relativeMaxError(latents, try XCTUnwrap(try floats(own)["latents"])), 1e-4)
            } else {
                XCTAssertLessThan(relativeMaxError(try XCTUnwrap(try floats(out)["sample"]), try XCTUnwrap(try floats(own)["images"])), 1e-4)
            }
        }
    }
}
