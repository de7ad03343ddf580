import Foundation
import TensorFormats
import XCTest

/// `erase --method uce` (formats/uce.md) against fixtures/uce/uce_check.py, an independent float64
/// implementation of the authors' equation with diffusers' encode_prompt, on the tiny random SD pipeline
/// of fixtures/clip/tiny_pipeline.py.
final class UCECLITests: XCTestCase {
    static let pipeline: Result<String, Error> = Result {
        try CLI.requirePython("import diffusers, transformers, torch")
        let root = try CLI.temporaryDirectory().path
        let built = try CLI.shell("python3 fixtures/clip/tiny_pipeline.py build \(root)/sd sd")
        guard built.status == 0 else { throw NSError(domain: "tiny_pipeline.py: \(built.stderr)", code: 1) }
        return root + "/sd"
    }

    static let forget = "a painting by Van Gogh", target = "a painting"
    static let preserve = ["a photo of a cat", "a red car", "a portrait by Monet", "starry night over the sea"]

    func floats(_ path: String) throws -> [String: (shape: [Int], data: [Float])] {
        let checkpoint = try Checkpoint.open(path)
        var out: [String: (shape: [Int], data: [Float])] = [:]
        for entry in checkpoint.entries { out[entry.name] = (entry.shape, try checkpoint.floats(of: entry)) }
        return out
    }

    /// The spec file uce_check.py reads and the preserve prompt file dmsurgery reads.
    func inputs(_ directory: URL) throws -> (spec: String, preserve: String) {
        let spec = directory.appendingPathComponent("spec.json").path
        let json: [String: Any] = ["forget": [Self.forget], "targets": [Self.target], "preserve": Self.preserve,
                                   "erase_scale": 1, "preserve_scale": 1, "lambda": 0.5]
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: spec))
        let preserve = directory.appendingPathComponent("preserve.txt").path
        try Data(Self.preserve.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: preserve))
        return (spec, preserve)
    }

    func testUCEMatchesTheReferenceEquationAndChangesNothingElse() throws {
        let pipe = try Self.pipeline.get()
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (spec, preserve) = try inputs(directory)
        let reference = directory.appendingPathComponent("reference.safetensors").path
        let python = try CLI.shell("python3 fixtures/uce/uce_check.py reference \(pipe) \(spec) \(reference)")
        XCTAssertEqual(python.status, 0, python.stderr)
        let out = directory.appendingPathComponent("edited.safetensors").path
        let run = try CLI.run(["erase", pipe, out, "--method", "uce", "--forget-prompt", Self.forget, "--target-prompt", Self.target,
                               "--preserve-prompts", preserve, "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let expected = try floats(reference), got = try floats(out), before = try floats(pipe + "/unet/diffusion_pytorch_model.safetensors")
        XCTAssertEqual(Set(got.keys), Set(before.keys))
        let projections = got.keys.filter { $0.hasSuffix("attn2.to_k.weight") || $0.hasSuffix("attn2.to_v.weight") }
        XCTAssertEqual(projections.count, 8, "the tiny UNet's four transformer blocks")
        for (name, tensor) in got {
            if let edited = expected[name] {
                XCTAssertEqual(tensor.shape, edited.shape, name)
                XCTAssertLessThan(relativeMaxError(tensor.data, edited.data), 1e-4, name)
                XCTAssertNotEqual(tensor.data, before[name]?.data, name)
            } else {
                XCTAssertEqual(tensor.data, before[name]?.data, "\(name) changed")
            }
        }
        // The judged invariants, with diffusers' embeddings (the authors' last-token rule): W_new c_forget
        // moves at least 70% of the way from W_old c_forget to W_old c_target; W_new c_p moves at most 15%.
        let c = try XCTUnwrap(expected["embedding.forget.0"]?.data), t = try XCTUnwrap(expected["embedding.target.0"]?.data)
        let kept = try Self.preserve.indices.map { try XCTUnwrap(expected["embedding.preserve.\($0)"]?.data) }
        func apply(_ w: [Float], _ x: [Float]) -> [Float] {
            let d = x.count
            return (0..<(w.count / d)).map { o in (0..<d).reduce(Float(0)) { $0 + w[o * d + $1] * x[$1] } }
        }
        func distance(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot() }
        for name in projections {
            let old = before[name]!.data, new = got[name]!.data
            let goal = apply(old, t)
            XCTAssertGreaterThanOrEqual(1 - distance(apply(new, c), goal) / distance(apply(old, c), goal), 0.7, name)
            for p in kept {
                let image = apply(old, p)
                XCTAssertLessThanOrEqual(distance(apply(new, p), image) / distance(image, Array(repeating: 0, count: image.count)), 0.15, name)
            }
        }
    }

    func testUCEOnAWidthPrunedStudentUsesTheTeachersTextEncoder() throws {
        let pipe = try Self.pipeline.get()
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let pruned = directory.appendingPathComponent("pruned.safetensors").path
        XCTAssertEqual(try CLI.run(["prune", "--ratio", "0.5", pipe + "/unet", pruned, "-q"]).status, 0)
        let out = directory.appendingPathComponent("edited.safetensors").path
        let noEncoder = try CLI.run(["erase", pruned, out, "--method", "uce", "--forget-prompt", Self.forget])
        XCTAssertEqual(noEncoder.status, 2)
        XCTAssertTrue(noEncoder.stderr.contains("\(pruned): invalid-config"), noEncoder.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        let run = try CLI.run(["erase", pruned, out, "--method", "uce", "--teacher", pipe, "--forget-prompt", Self.forget, "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let before = try floats(pruned), got = try floats(out)
        let edited = got.keys.filter { name in got[name]!.data != before[name]!.data }
        XCTAssertEqual(edited.count, 8)
        XCTAssertTrue(edited.allSatisfy { $0.hasSuffix("attn2.to_k.weight") || $0.hasSuffix("attn2.to_v.weight") }, "\(edited)")
    }

    func testUCEOnConceptWorldFilesMapsTheStyleTokenToTheAnchors() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        XCTAssertEqual(try CLI.run(["world", directory.path, "--seed", "0", "--per-prompt", "1", "-q"]).status, 0)
        let model = CLI.fixture("teacher")
        let out = directory.appendingPathComponent("edited.safetensors").path
        let run = try CLI.run(["erase", model, out, "--method", "uce", "--forget", directory.appendingPathComponent("forget.safetensors").path,
                               "--data", directory.appendingPathComponent("retain.safetensors").path])
        XCTAssertEqual(run.status, 0, run.stderr)
        // One erased row (the forget style's token, mapped to the anchor style's) and the retain prompts' distinct rows.
        XCTAssertTrue(run.stderr.contains("from 1 erased and "), run.stderr)
    }

    func testUCERefusesTrainingOptionsAndMisplacedOptions() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("o.safetensors").path
        let model = CLI.fixture("teacher")
        let steps = try CLI.run(["erase", model, out, "--method", "uce", "--forget-prompt", "x", "--steps", "5"])
        XCTAssertEqual(steps.status, 64)
        XCTAssertTrue(steps.stderr.contains("--steps is a training option"), steps.stderr)
        let lambda = try CLI.run(["erase", model, out, "--method", "esd", "--teacher", model, "--forget-prompt", "x", "--lambda", "2"])
        XCTAssertEqual(lambda.status, 64)
        XCTAssertTrue(lambda.stderr.contains("--lambda applies to --method uce"), lambda.stderr)
        XCTAssertEqual(try CLI.run(["erase", model, out, "--method", "uce", "--forget-prompt", "x", "--lambda", "0"]).status, 64)
        XCTAssertEqual(try CLI.run(["erase", model, out, "--method", "esd", "--forget-prompt", "x"]).status, 64)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    func testDeltaOutLoRALoadedByDiffusersGivesTheEditedUNetInBothDialectsAndConvertTranslates() throws {
        let pipe = try Self.pipeline.get()
        try CLI.requirePython("import peft")
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (_, preserve) = try inputs(directory)
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        var edited: [String] = []
        for dialect in ["peft", "kohya"] {
            let out = path("\(dialect).edited.safetensors"), lora = path("\(dialect).lora.safetensors")
            let run = try CLI.run(["erase", pipe, out, "--method", "uce", "--forget-prompt", Self.forget, "--target-prompt", Self.target,
                                   "--preserve-prompts", preserve, "--delta-out", lora, "--rank", "8", "--lora-format", dialect, "-q"])
            XCTAssertEqual(run.status, 0, run.stderr)
            XCTAssertEqual(try floats(lora).count, dialect == "peft" ? 16 : 24, dialect)
            edited.append(out)
        }
        XCTAssertEqual(try floats(edited[0]).mapValues(\.data), try floats(edited[1]).mapValues(\.data))
        let check = try CLI.shell("python3 fixtures/uce/lora_check.py \(pipe) \(edited[0]) \(path("peft.lora.safetensors")) \(path("kohya.lora.safetensors"))")
        XCTAssertEqual(check.status, 0, check.stderr)
        let lines = String(decoding: check.stdout, as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(lines.count, 2, check.stderr)
        for (dialect, line) in zip(["peft", "kohya"], lines) {
            let result = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Double]
            XCTAssertEqual(result?["adapted"], 8, dialect)
            XCTAssertLessThan(try XCTUnwrap(result?["max_relative_error"]), 1e-4, dialect)
        }
        // kohya -> peft reproduces the peft file (alpha = rank: nothing to fold), and peft -> kohya the kohya file.
        XCTAssertEqual(try CLI.run(["convert", path("kohya.lora.safetensors"), path("k2p.safetensors"), "--lora-format", "peft", "-q"]).status, 0)
        XCTAssertEqual(try CLI.run(["convert", path("peft.lora.safetensors"), path("p2k.safetensors"), "--lora-format", "kohya", "-q"]).status, 0)
        for (made, direct) in [("k2p", "peft"), ("p2k", "kohya")] {
            let a = try floats(path("\(made).safetensors")), b = try floats(path("\(direct).lora.safetensors"))
            XCTAssertEqual(Set(a.keys), Set(b.keys), made)
            for (name, tensor) in a { XCTAssertEqual(tensor.data, b[name]?.data, "\(made) \(name)") }
        }
        // A text-encoder key is reported, not dropped.
        let bad = path("with-te.safetensors")
        var tensors = try floats(path("kohya.lora.safetensors")).map { (name: $0.key, shape: $0.value.shape, values: $0.value.data) }
        tensors.append(("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", [2, 4], Array(repeating: 0, count: 8)))
        try SafetensorsWriter.writeFloats(tensors, to: bad)
        let refused = try CLI.run(["convert", bad, path("x.safetensors"), "--lora-format", "peft"])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.stderr.contains("\(bad): lora-unmapped-key") && refused.stderr.contains("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("x.safetensors")))
    }

    /// The UCE fields reach the run description (a resume with another value is refused by the field
    /// comparison RunDescriptionTests covers).
    func testUnlearnWithTheUCEUpperObjectiveStartsFromTheEditAndRecordsItsScales() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        XCTAssertEqual(try CLI.run(["world", path("world"), "--seed", "0", "--per-prompt", "1", "-q"]).status, 0)
        let model = CLI.fixture("teacher")
        let common = ["--teacher", model, "--data", path("world/retain.safetensors"), "--forget", path("world/forget.safetensors"),
                      "--forget-sample-steps", "1", "--batch", "2", "--inner-steps", "1", "-q"]
        // The closed-form edit alone, then the phase started from it.
        XCTAssertEqual(try CLI.run(["erase", model, path("edit.safetensors"), "--method", "uce", "--forget", path("world/forget.safetensors"),
                                    "--data", path("world/retain.safetensors"), "-q"]).status, 0)
        let run = try CLI.run(["unlearn", model, path("u.safetensors"), "--upper", "uce", "--init", "uce", "--steps", "1",
                               "--log", path("log.jsonl")] + common)
        XCTAssertEqual(run.status, 0, run.stderr)
        let log = try String(contentsOfFile: path("log.jsonl"), encoding: .utf8)
        XCTAssertTrue(log.contains("\"l_cu\""), log)
        let description = try Checkpoint.open(path("u.safetensors")).metadata?["dmsurgery.training"] ?? ""
        XCTAssertTrue(description.contains("\"uce\":{\"eraseScale\":1,\"initEdit\":\"uce\",\"lambda\":0.5,\"preserveScale\":1}")
                      && description.contains("\"method\":\"uce\""), description)
        // One upper step moves the edited projections by at most a few learning rates; everything else by none of UCE.
        let edit = try floats(path("edit.safetensors")), trained = try floats(path("u.safetensors")), before = try floats(model + "/diffusion_pytorch_model.safetensors")
        let name = try XCTUnwrap(edit.keys.first { $0.hasSuffix("attn2.to_k.weight") })
        let fromEdit = zip(trained[name]!.data, edit[name]!.data).map { abs($0 - $1) }.max() ?? 1
        let editSize = zip(edit[name]!.data, before[name]!.data).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThan(fromEdit, 1e-2)
        XCTAssertGreaterThan(editSize, 10 * fromEdit, "the phase did not start from the closed-form edit")
        let prompts = try CLI.run(["unlearn", model, path("p.safetensors"), "--teacher", model, "--data", path("world/retain.safetensors"),
                                   "--forget-prompt", "x", "--method", "uce"])
        XCTAssertEqual(prompts.status, 64)
    }
}
