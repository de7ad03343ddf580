import Foundation
import TensorFormats
import XCTest

/// The PixArt transformer through the binary: `forward` against diffusers' goldens (fixtures/engine/
/// pixart_*), one-line errors for inputs that do not fit, `inspect`'s architecture and per-block costs,
/// and `prune --depth-keep/--depth-blocks` students that stock diffusers loads (pixart_check.py).
final class PixArtCLITests: XCTestCase {
    private var directory: URL!
    override func setUpWithError() throws { directory = try CLI.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }
    private func path(_ name: String) -> String { directory.path + "/" + name }

    private func floats(_ file: String, _ name: String) throws -> [Float] {
        let c = try Checkpoint.open(file)
        return try c.floats(of: try XCTUnwrap(c.entry(named: name), name))
    }

    func testForwardAndBackwardMatchDiffusers() throws {
        let model = CLI.fixture("engine/pixart_pruned"), io = CLI.fixture("engine/pixart_pruned/io.safetensors")
        let run = try CLI.run(["forward", "--model", model, "--inputs", io, "--output", path("out.safetensors"), "--backward", "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let grads = CLI.fixture("engine/pixart_pruned/grads.safetensors")
        XCTAssertLessThanOrEqual(relativeMaxError(try floats(path("out.safetensors"), "sample"), try floats(io, "out.sample")), 1e-4)
        for name in ["grad.sample", "grad.encoder_hidden_states", "grad.transformer_blocks.0.attn2.to_q.weight", "grad.pos_embed.proj.weight"] {
            XCTAssertLessThanOrEqual(relativeMaxError(try floats(path("out.safetensors"), name), try floats(grads, name)), 1e-4, name)
        }
    }

    /// Written as one safetensors file or as GGUF (the config travels inside), the model runs again from
    /// the file: f32 as before, q8_0 within its quantization error.
    func testSafetensorsAndGGUFFilesRunInTheEngine() throws {
        let model = CLI.fixture("engine/pixart_small"), io = CLI.fixture("engine/pixart_small/io.safetensors")
        for (file, arguments, tolerance) in [("px.safetensors", [String](), Float(1e-4)), ("px.gguf", [], 1e-4),
                                             ("px-q8.gguf", ["--quant", "q8_0"], 1e-2)] {
            let convert = try CLI.run(["convert", model, path(file), "-q"] + arguments)
            XCTAssertEqual(convert.status, 0, "\(file): \(convert.stderr)")
            let run = try CLI.run(["forward", "--model", path(file), "--inputs", io, "--output", path(file + ".out"), "-q"])
            XCTAssertEqual(run.status, 0, "\(file): \(run.stderr)")
            XCTAssertLessThanOrEqual(relativeMaxError(try floats(path(file + ".out"), "sample"), try floats(io, "out.sample")), tolerance, file)
        }
    }

    func testInputsThatDoNotFitAreOneLineErrors() throws {
        let model = CLI.fixture("engine/pixart_small")
        let full = try Checkpoint.open(CLI.fixture("engine/pixart_small/io.safetensors"))
        func write(_ name: String, _ change: (inout [(name: String, shape: [Int], values: [Float])]) -> Void) throws -> String {
            var tensors: [(name: String, shape: [Int], values: [Float])] = try full.entries.map { ($0.name, $0.shape, try full.floats(of: $0)) }
            change(&tensors)
            try SafetensorsWriter.writeFloats(tensors, to: path(name))
            return path(name)
        }
        let cases: [(String, (inout [(name: String, shape: [Int], values: [Float])]) -> Void, String)] = [
            ("no-caption", { $0.removeAll { $0.name == "encoder_hidden_states" } }, "encoder_hidden_states"),
            ("bad-mask", { t in t = t.map { $0.name == "encoder_attention_mask" ? (name: $0.name, shape: [2, 2], values: Array($0.values.prefix(4))) : $0 } }, "encoder_attention_mask"),
            ("odd-side", { t in t = t.map { $0.name == "sample" ? (name: $0.name, shape: [2, 4, 1, 64], values: $0.values) : $0 } }, "sample"),
            ("bad-timestep", { t in t = t.map { $0.name == "timestep" ? (name: $0.name, shape: [1], values: [1]) : $0 } }, "timestep"),
        ]
        for (name, change, subject) in cases {
            let inputs = try write(name + ".safetensors", change)
            let run = try CLI.run(["forward", "--model", model, "--inputs", inputs, "--output", path(name + ".out.safetensors")])
            XCTAssertEqual(run.status, 2, name)
            XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, "\(name): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains("bad-input") && run.stderr.contains(subject), "\(name): \(run.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: path(name + ".out.safetensors")), name)
        }
        let blocks = try CLI.run(["forward", "--model", model, "--inputs", CLI.fixture("engine/pixart_small/io.safetensors"),
                                  "--output", path("b.safetensors"), "--blocks"])
        XCTAssertEqual(blocks.status, 64, blocks.stderr)
    }

    /// DDIM from precomputed caption embeddings to latents: the shape the model draws, the same bytes for
    /// the same seed, another sample for another seed; a caption of the wrong width exits 2.
    func testSampleDrawsLatentsFromCaptionEmbeddings() throws {
        let model = CLI.fixture("engine/pixart_small")
        let io = try Checkpoint.open(CLI.fixture("engine/pixart_small/io.safetensors"))
        let caption = try io.floats(of: XCTUnwrap(io.entry(named: "encoder_hidden_states")))
        let cond = path("cond.safetensors")
        try SafetensorsWriter.writeFloats([("encoder_hidden_states", [1, 5, 12], Array(caption.prefix(60))),
                                           ("encoder_attention_mask", [1, 5], [1, 1, 1, 0, 0])], to: cond)
        var outputs: [[Float]] = []
        for (name, seed) in [("a", "0"), ("b", "0"), ("c", "1")] {
            let run = try CLI.run(["sample", "--model", model, "--cond", cond, "--count", "2", "--steps", "3", "--seed", seed,
                                   "--out", path(name + ".safetensors"), "-q"])
            XCTAssertEqual(run.status, 0, run.stderr)
            let latents = try Checkpoint.open(path(name + ".safetensors"))
            XCTAssertEqual(latents.entry(named: "latents")?.shape, [2, 4, 8, 8])
            outputs.append(try floats(path(name + ".safetensors"), "latents"))
        }
        XCTAssertEqual(outputs[0], outputs[1])
        XCTAssertNotEqual(outputs[0], outputs[2])
        XCTAssertTrue(outputs[0].allSatisfy(\.isFinite))
        try SafetensorsWriter.writeFloats([("encoder_hidden_states", [1, 6, 10], Array(caption.prefix(60)))], to: path("wide.safetensors"))
        let refused = try CLI.run(["sample", "--model", model, "--cond", path("wide.safetensors"), "--out", path("d.safetensors")])
        XCTAssertEqual(refused.status, 2, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("encoder_hidden_states"), refused.stderr)
    }

    func testBenchForwardNamesTheArchitecture() throws {
        let run = try CLI.run(["bench", "forward", "--config", CLI.fixture("engine/pixart_pruned/config.json"), "--steps", "1", "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: run.stdout) as? [String: Any])
        XCTAssertEqual(report["architecture"] as? String, "pixart-transformer")
        XCTAssertEqual(report["tokens"] as? Int, 36)
    }

    func testInspectNamesTheArchitectureWithItsCostAndWidthsPerBlock() throws {
        let run = try CLI.run(["inspect", "--json", CLI.fixture("engine/pixart_pruned")])
        XCTAssertEqual(run.status, 0, run.stderr)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: run.stdout) as? [String: Any])
        let pixart = try XCTUnwrap(report["pixart"] as? [String: Any])
        XCTAssertEqual(pixart["architecture"] as? String, "pixart-transformer")
        XCTAssertEqual(pixart["tokens"] as? Int, 36)
        XCTAssertEqual(pixart["pruned"] as? Bool, true)
        let blocks = try XCTUnwrap(pixart["blocks"] as? [[String: Any]])
        XCTAssertEqual(blocks.map { $0["name"] as? String }, ["patch_embed", "timestep", "block.0", "block.1", "block.2", "final"])
        XCTAssertEqual(blocks.compactMap { $0["self_heads"] as? Int }, [2, 4, 1])
        XCTAssertEqual(blocks.compactMap { $0["ffn_width"] as? Int }, [22, 64, 24])
        XCTAssertEqual(blocks.map { $0["parameters"] as? Int ?? 0 }.reduce(0, +), report["parameters"] as? Int)
        let text = try CLI.run(["inspect", CLI.fixture("engine/pixart_small")])
        XCTAssertTrue(String(decoding: text.stdout, as: UTF8.self).contains("pixart-transformer cost per block"))
    }

    func testDepthCutCopiesTheKeptBlocksOfTheTeacher() throws {
        let teacher = CLI.fixture("engine/pixart_small")
        let out = path("student")
        let run = try CLI.run(["prune", "--depth-blocks", "1", teacher, out, "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/config.json"))) as? [String: Any])
        XCTAssertEqual(config["num_layers"] as? Int, 1)
        let student = try Checkpoint.open(out + "/diffusion_pytorch_model.safetensors")
        XCTAssertEqual(try student.floats(of: XCTUnwrap(student.entry(named: "transformer_blocks.0.ff.net.2.weight"))),
                       try floats(teacher + "/diffusion_pytorch_model.safetensors", "transformer_blocks.1.ff.net.2.weight"))
        XCTAssertNil(student.entry(named: "transformer_blocks.1.ff.net.2.weight"))
        let keep = try CLI.run(["prune", "--depth-keep", "2", CLI.fixture("engine/pixart_pruned"), path("keep2"), "-q"])
        XCTAssertEqual(keep.status, 0, keep.stderr)
        let map = try XCTUnwrap(try Checkpoint.open(path("keep2") + "/diffusion_pytorch_model.safetensors").metadata?["dmsurgery.depth"])
        XCTAssertTrue(map.hasPrefix("{\"kept\":[0,2]"), map)
        for bad in [["--depth-keep", "4"], ["--depth-blocks", "1,0"], ["--depth-blocks", "2"]] {
            let refused = try CLI.run(["prune"] + bad + [teacher, path("bad"), "-q"])
            XCTAssertEqual(refused.status, 2, "\(bad): \(refused.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad")), "\(bad)")
        }
    }

    /// Heads and FFN width cut by each criterion, and the student runs in the engine.
    func testWidthPruneCutsHeadsAndFeedForwardWidth() throws {
        let teacher = CLI.fixture("engine/pixart_small"), io = CLI.fixture("engine/pixart_small/io.safetensors")
        for criterion in ["l1", "l2", "random"] {
            let out = path("\(criterion).safetensors")
            let run = try CLI.run(["prune", "--ratio", "0.5", "--criterion", criterion, teacher, out, "-q"])
            XCTAssertEqual(run.status, 0, "\(criterion): \(run.stderr)")
            let student = try Checkpoint.open(out)
            XCTAssertEqual(student.entry(named: "transformer_blocks.0.attn1.to_q.weight")?.shape, [8, 16], criterion)
            XCTAssertEqual(student.entry(named: "transformer_blocks.1.attn2.to_out.0.weight")?.shape, [16, 8], criterion)
            XCTAssertEqual(student.entry(named: "transformer_blocks.0.ff.net.2.weight")?.shape, [16, 32], criterion)
            let forward = try CLI.run(["forward", "--model", out, "--inputs", io, "--output", out + ".ours", "-q"])
            XCTAssertEqual(forward.status, 0, "\(criterion): \(forward.stderr)")
        }
        // Taylor on a data file of latents and captions (the fixture's inputs), the caption mask included.
        let full = try Checkpoint.open(io)
        let data = path("data.safetensors")
        try SafetensorsWriter.writeFloats(try [("x0", "sample"), ("cond", "encoder_hidden_states"), ("cond_mask", "encoder_attention_mask")].map { key, name in
            let entry = try XCTUnwrap(full.entry(named: name))
            return (key, entry.shape, try full.floats(of: entry))
        }, to: data)
        let taylor = try CLI.run(["prune", "--ratio", "0.5", "--criterion", "taylor", "--data", data, "--timesteps", "4", teacher,
                                  path("t.safetensors"), "--emit-mask", path("t.json"), "-q"])
        XCTAssertEqual(taylor.status, 0, taylor.stderr)
        XCTAssertEqual(try Checkpoint.open(path("t.safetensors")).entry(named: "transformer_blocks.0.attn1.to_q.weight")?.shape, [8, 16])
        let mask = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("t.json")))) as? [String: Any])
        XCTAssertEqual(mask["criterion"] as? String, "taylor")
    }

    /// One live diffusers run for every kind of student: the depth cut loads with from_pretrained (no
    /// missing, unexpected or mismatched keys, tensors equal to the teacher's) and computes what the
    /// engine computes; width-pruned students match a torch model built from their own tensors.
    func testPrunedStudentsMatchDiffusers() throws {
        try CLI.requirePython("import diffusers, torch, safetensors")
        let teacher = CLI.fixture("engine/pixart_small"), io = CLI.fixture("engine/pixart_small/io.safetensors")
        var jobs: [String] = []
        let depth = path("depth")
        XCTAssertEqual(try CLI.run(["prune", "--depth-blocks", "1", teacher, depth, "-q"]).status, 0)
        XCTAssertEqual(try CLI.run(["forward", "--model", depth, "--inputs", io, "--output", depth + ".ours", "-q"]).status, 0)
        jobs.append("depth \(depth) \(teacher) \(io) \(depth).ours")
        for criterion in ["l1", "random"] {
            let out = path("\(criterion).safetensors")
            XCTAssertEqual(try CLI.run(["prune", "--ratio", "0.5", "--criterion", criterion, teacher, out, "-q"]).status, 0, criterion)
            XCTAssertEqual(try CLI.run(["forward", "--model", out, "--inputs", io, "--output", out + ".ours", "-q"]).status, 0, criterion)
            jobs.append("width \(out) \(io) \(out).ours")
        }
        let check = try CLI.shell("python3 \(CLI.fixture("engine/pixart_check.py")) " + jobs.joined(separator: " "))
        XCTAssertEqual(check.status, 0, String(decoding: check.stdout, as: UTF8.self) + check.stderr)
        XCTAssertEqual(String(decoding: check.stdout, as: UTF8.self).components(separatedBy: ": ok:").count, jobs.count + 1)
    }
}
