import Foundation
import TensorFormats
import XCTest

/// Pruning an SDXL UNet: `prune --depth koala-1b|koala-700m` against diffusers, live (koala_check.py
/// builds a random-init SDXL-shaped teacher whose deepest transformers are 10 blocks deep, as SDXL's),
/// and `prune --ratio` on the SDXL-shaped engine fixture, without Python.
final class KOALACLITests: XCTestCase {
    private var directory: URL!
    override func setUpWithError() throws { directory = try CLI.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    private func path(_ name: String) -> String { directory.path + "/" + name }

    private func bytes(_ checkpoint: Checkpoint, _ name: String) throws -> [UInt8] {
        var out: [UInt8] = []
        try checkpoint.read(try XCTUnwrap(checkpoint.entry(named: name), name)) { out.append(contentsOf: $0) }
        return out
    }

    /// Block output name -> shape, from `forward --blocks`.
    private func blockShapes(_ file: String) throws -> [String: [Int]] {
        let checkpoint = try Checkpoint.open(file)
        return Dictionary(uniqueKeysWithValues: checkpoint.entries.filter { $0.name.hasPrefix("block.") }.map { ($0.name, $0.shape) })
    }

    func testKOALAStudentsLoadInDiffusersCopyTheTeacherByteForByteAndMatchItsForward() throws {
        try CLI.requirePython("import diffusers, torch, safetensors")
        let script = CLI.repository.appendingPathComponent("Tests/CLITests/koala_check.py").path
        // The script builds the teacher, runs prune --depth and forward --blocks itself, and checks.
        let check = try CLI.shell("python3 \(script) run \(directory.path)")
        let report = String(decoding: check.stdout, as: UTF8.self)
        XCTAssertEqual(check.status, 0, report + check.stderr)
        XCTAssertEqual(report.components(separatedBy: "ok: ").count, 3, report)

        // L_featKD's pairs: KOALA keeps every stage, so each student block output meets its teacher
        // namesake with the same shape (BlockAlignment pairs them by name), and 700m has no mid term.
        let reference = try blockShapes(path("teacher.blocks.safetensors"))
        XCTAssertEqual(reference.count, 7)
        for variant in ["koala-1b", "koala-700m"] {
            let student = try blockShapes(path("\(variant).ours.safetensors"))
            XCTAssertEqual(student.count, variant == "koala-700m" ? 6 : 7, variant)
            XCTAssertEqual(student["block.mid"] == nil, variant == "koala-700m", variant)
            for (name, shape) in student { XCTAssertEqual(reference[name], shape, "\(variant): \(name)") }
        }

        // The KOALA-700M student trains against its teacher (unlearn: L_featKD pairs every stage's
        // block outputs, no mid term) and ships as an sdxl GGUF in the original layout without a
        // middle block (data of the teacher's widths: cond [N,7,64], cond_pooled [N,32], time_ids).
        func normal(_ count: Int, _ seed: Int) -> [Float] { (0..<count).map { Float(sin(Double($0 * 7 + seed))) } }
        let ids = [Float](Array([[Float]](repeating: [128, 128, 0, 0, 128, 128], count: 2).joined()))
        var tensors: [(name: String, shape: [Int], values: [Float])] = [
            ("x0", [2, 4, 16, 16], normal(2048, 1)), ("cond", [2, 7, 64], normal(896, 2)), ("uncond", [7, 64], normal(448, 3)),
            ("cond_pooled", [2, 32], normal(64, 4)), ("uncond_pooled", [32], normal(32, 5)), ("time_ids", [2, 6], ids),
        ]
        try SafetensorsWriter.writeFloats(tensors, to: path("data.safetensors"))
        tensors = tensors.map { $0.shape.count >= 2 && $0.name != "uncond" ? ($0.name, [1] + $0.shape.dropFirst(), Array($0.values.prefix($0.values.count / 2))) : $0 }
        try SafetensorsWriter.writeFloats(tensors, to: path("forget.safetensors"))
        let unlearn = try CLI.run(["unlearn", path("koala-700m"), path("u.safetensors"), "--teacher", path("teacher"), "--data", path("data.safetensors"),
                                   "--forget", path("forget.safetensors"), "--steps", "1", "--inner-steps", "1", "--batch", "1", "--log", path("u.log"), "-q"])
        XCTAssertEqual(unlearn.status, 0, unlearn.stderr)
        let line = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("u.log")))) as? [String: Any])
        XCTAssertGreaterThan(line["l_feat"] as? Double ?? 0, 0)
        let gguf = try CLI.run(["convert", path("u.safetensors"), path("u.gguf"), "--pipeline-layout", "ldm", "-q"])
        XCTAssertEqual(gguf.status, 0, gguf.stderr)
        let file = try Checkpoint.open(path("u.gguf"))
        XCTAssertEqual(file.entries.count, try Checkpoint.open(path("u.safetensors")).entries.count)
        XCTAssertFalse(file.entries.contains { $0.name.hasPrefix("middle_block.") })
        XCTAssertTrue(file.details.contains { $0.0 == "gguf kv general.architecture" && $0.1 == "STRING sdxl" }, "\(file.details)")

        // KOALA then widths: the width pass prunes the student's own layers, and the result runs.
        let both = path("koala-700m-0.3/")
        let prune = try CLI.run(["prune", "--depth", "koala-700m", "--ratio", "0.3", path("teacher"), both, "-q"])
        XCTAssertEqual(prune.status, 0, prune.stderr)
        let pruned = try Checkpoint.open(both + "diffusion_pytorch_model.safetensors")
        let dense = try Checkpoint.open(path("koala-700m/diffusion_pytorch_model.safetensors"))
        XCTAssertEqual(Set(pruned.entries.map(\.name)), Set(dense.entries.map(\.name)))
        XCTAssertLessThan(pruned.parameterCount, dense.parameterCount)
        let forward = try CLI.run(["forward", "--model", both, "--inputs", path("io.safetensors"), "--output", path("both.safetensors"), "-q"])
        XCTAssertEqual(forward.status, 0, forward.stderr)
    }

    func testKOALARefusesATeacherWhoseDeepestTransformersAreNotDeeperThanItKeepsAndWritesNothing() throws {
        // The engine fixture's deepest transformers have 3 blocks: KOALA keeps 6 or 5 of SDXL's 10.
        let out = path("koala/")
        let run = try CLI.run(["prune", "--depth", "koala-700m", CLI.fixture("engine/cond_sdxl"), out])
        XCTAssertEqual(run.status, 2)
        XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("depth-unsupported") && run.stderr.contains("3 blocks"), run.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "diffusion_pytorch_model.safetensors"))
    }

    func testWidthPruningCoversSDXLKeepsTheAddedEmbeddingDenseAndRunsInForward() throws {
        let model = CLI.fixture("engine/cond_sdxl")
        let dense = try Checkpoint.open(model + "/diffusion_pytorch_model.safetensors")
        let pruned = path("pruned.safetensors")
        let prune = try CLI.run(["prune", "--ratio", "0.5", model, pruned, "-q"])
        XCTAssertEqual(prune.status, 0, prune.stderr)
        let student = try Checkpoint.open(pruned)
        XCTAssertEqual(Set(student.entries.map(\.name)), Set(dense.entries.map(\.name)))
        XCTAssertLessThan(student.parameterCount, dense.parameterCount)

        // text_time's embeddings are no unit of any layer: add_embedding and time_embedding stay as they are.
        let embeddings = dense.entries.map(\.name).filter { $0.hasPrefix("add_embedding.") || $0.hasPrefix("time_embedding.") }
        XCTAssertEqual(embeddings.filter { $0.hasPrefix("add_embedding.") }.count, 4)
        for name in embeddings { XCTAssertEqual(try bytes(student, name), try bytes(dense, name), name) }

        // Every transformer block of the deeper transformers (2 and 3 blocks) is a unit: each one's
        // feed-forward and attention heads lost half their width.
        let deep = dense.entries.filter {
            $0.name.hasSuffix(".ff.net.2.weight") && ($0.name.contains(".transformer_blocks.1.") || $0.name.contains(".transformer_blocks.2."))
        }
        XCTAssertGreaterThanOrEqual(deep.count, 4)
        for entry in deep {
            XCTAssertEqual(try XCTUnwrap(student.entry(named: entry.name)).shape, [entry.shape[0], entry.shape[1] / 2], entry.name)
            let heads = entry.name.replacingOccurrences(of: ".ff.net.2.weight", with: ".attn1.to_out.0.weight")
            XCTAssertEqual(try XCTUnwrap(student.entry(named: heads)).shape[1], try XCTUnwrap(dense.entry(named: heads)).shape[1] / 2, heads)
        }

        // The pruned model runs with the added conditioning; without it, SDXL's UNet refuses its inputs.
        let out = path("out.safetensors")
        let forward = try CLI.run(["forward", "--model", pruned, "--inputs", model + "/io.safetensors", "--output", out, "-q"])
        XCTAssertEqual(forward.status, 0, forward.stderr)
        let sample = try Checkpoint.open(out)
        XCTAssertEqual(sample.entry(named: "sample")?.shape, [2, 4, 8, 8])
        XCTAssertTrue(try sample.floats(named: "sample").allSatisfy(\.isFinite))
    }
}
