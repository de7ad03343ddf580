import Foundation
import TensorFormats
import XCTest

/// `prune --depth` against diffusers: fixtures/depth (made by fixtures/depth/generate.py) hold teachers,
/// the students' configs as diffusers builds them, BK-SDM-rule copy maps and diffusers' outputs and
/// gradients; the live
/// check (depth_check.py) loads our folders with `from_pretrained`.
final class DepthPruneCLITests: XCTestCase {
    private var directory: URL!
    override func setUpWithError() throws { directory = try CLI.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    /// A path in the test's folder; a trailing / (a folder OUT) is kept.
    private func path(_ name: String) -> String { directory.path + "/" + name }

    private func json(_ file: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any])
    }

    private func bytes(_ checkpoint: Checkpoint, _ name: String) throws -> [UInt8] {
        var out: [UInt8] = []
        try checkpoint.read(try XCTUnwrap(checkpoint.entry(named: name), name)) { out.append(contentsOf: $0) }
        return out
    }

    private func relativeError(_ got: [Float], _ want: [Float]) -> Float {
        let scale = max(want.map(abs).max() ?? 1, 1e-12)
        return (zip(got, want).map { abs($0 - $1) }.max() ?? .infinity) / scale
    }

    private let cases: [(teacher: String, variants: [String])] = [
        ("cond_sdlike", ["base", "small", "tiny"]), ("cond_perblock", ["base", "small"]), ("ddpm", ["base", "small", "tiny"]),
    ]

    func testStudentsHaveDiffusersConfigsBKSDMCopyMapsByteEqualTensorsAndDiffusersOutputsAndGradients() throws {
        for (name, variants) in cases {
            let teacher = CLI.fixture("depth/\(name)/teacher")
            let teacherFile = try Checkpoint.open(teacher + "/diffusion_pytorch_model.safetensors")
            for variant in variants {
                let label = "\(name) \(variant)"
                let out = path("\(name)-\(variant)/")
                let run = try CLI.run(["prune", "--depth", variant, teacher, out, "-q"])
                XCTAssertEqual(run.status, 0, "\(label): \(run.stderr)")

                // The config diffusers itself builds for this student, key for key.
                let want = try json(CLI.fixture("depth/\(name)/\(variant).config.json"))
                let got = try json(out + "config.json")
                for (key, value) in want where !key.hasPrefix("_") {
                    XCTAssertEqual(got[key].map { "\($0)" } ?? "absent", "\(value)", "\(label): \(key)")
                }

                // The copy map, and every tensor the bytes of the teacher tensor it names.
                let student = try Checkpoint.open(out + "diffusion_pytorch_model.safetensors")
                let depth = try XCTUnwrap(student.metadata?["dmsurgery.depth"], label)
                let map = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(depth.utf8)) as? [String: Any])
                let copies = try XCTUnwrap(map["copies"] as? [String: String])
                let expected = try XCTUnwrap(try json(CLI.fixture("depth/\(name)/\(variant).map.json")) as? [String: String])
                XCTAssertEqual(copies, expected, label)
                XCTAssertEqual(Set(student.entries.map(\.name)), Set(expected.keys), label)
                for entry in student.entries {
                    let source = try XCTUnwrap(teacherFile.entry(named: copies[entry.name] ?? ""), entry.name)
                    XCTAssertEqual(entry.shape, source.shape, "\(label): \(entry.name)")
                    XCTAssertEqual(try bytes(student, entry.name), try bytes(teacherFile, source.name), "\(label): \(entry.name)")
                }

                // Our forward and backward on the folder, against diffusers' on the same student.
                let io = CLI.fixture("depth/\(name)/\(variant).io.safetensors")
                let result = path("\(name)-\(variant).out.safetensors")
                let forward = try CLI.run(["forward", "--model", out, "--inputs", io, "--output", result, "--backward", "-q"])
                XCTAssertEqual(forward.status, 0, "\(label): \(forward.stderr)")
                let ours = try Checkpoint.open(result), reference = try Checkpoint.open(io)
                XCTAssertLessThanOrEqual(relativeError(try ours.floats(named: "sample"), try reference.floats(named: "out.sample")), 1e-4, label)
                let gradients = reference.entries.filter { $0.name.hasPrefix("grad.") }
                XCTAssertEqual(gradients.count, 4, label)
                for entry in gradients {
                    XCTAssertLessThanOrEqual(relativeError(try ours.floats(named: entry.name), try reference.floats(of: entry)), 1e-3,
                                             "\(label): \(entry.name)")
                }
            }
        }
    }

    func testDiffusersLoadsEveryVariantWithNoMissingUnexpectedOrMismatchedKeys() throws {
        try CLI.requirePython("import diffusers, torch, safetensors")
        let script = CLI.repository.appendingPathComponent("Tests/CLITests/depth_check.py").path
        // The fixtures' teachers and the embedded concept-world teacher (another config).
        let teachers = cases.map { (CLI.fixture("depth/\($0.teacher)/teacher"), $0.variants) }
            + [(CLI.fixture("teacher"), ["base", "small"])]
        var jobs: [(label: String, teacher: String, out: String)] = []
        for (index, (teacher, variants)) in teachers.enumerated() {
            for variant in variants {
                let out = path("live-\(index)-\(variant)")
                let run = try CLI.run(["prune", "--depth", variant, teacher, out + "/", "-q"])
                XCTAssertEqual(run.status, 0, "\(teacher) \(variant): \(run.stderr)")
                jobs.append(("\(teacher) \(variant)", teacher, out))
            }
        }
        let inputs = try CLI.shell("python3 \(script) inputs " + jobs.map { "\($0.out) \($0.out).io.safetensors" }.joined(separator: " "))
        XCTAssertEqual(inputs.status, 0, inputs.stderr)
        for job in jobs {
            let forward = try CLI.run(["forward", "--model", job.out, "--inputs", job.out + ".io.safetensors",
                                       "--output", job.out + ".ours.safetensors", "-q"])
            XCTAssertEqual(forward.status, 0, "\(job.label): \(forward.stderr)")
        }
        let check = try CLI.shell("python3 \(script) check "
                                  + jobs.map { "\($0.out) \($0.teacher) \($0.out).io.safetensors \($0.out).ours.safetensors" }.joined(separator: " "))
        XCTAssertEqual(check.status, 0, String(decoding: check.stdout, as: UTF8.self) + check.stderr)
        XCTAssertEqual(String(decoding: check.stdout, as: UTF8.self).components(separatedBy: ": ok:").count, jobs.count + 1)
    }

    func testDepthThenWidthComposesAndRuns() throws {
        let teacher = CLI.fixture("depth/cond_sdlike/teacher")
        // OUT with no trailing / and no .safetensors suffix is a folder too.
        let depthOnly = path("small/"), both = path("small-0.3/")
        XCTAssertEqual(try CLI.run(["prune", "--depth", "small", teacher, String(depthOnly.dropLast()), "-q"]).status, 0)
        let run = try CLI.run(["prune", "--depth", "small", "--ratio", "0.3", teacher, both, "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let dense = try Checkpoint.open(depthOnly + "diffusion_pytorch_model.safetensors")
        let pruned = try Checkpoint.open(both + "diffusion_pytorch_model.safetensors")
        XCTAssertEqual(Set(pruned.entries.map(\.name)), Set(dense.entries.map(\.name)))
        XCTAssertLessThan(pruned.parameterCount, dense.parameterCount)
        XCTAssertNotNil(pruned.metadata?["dmsurgery.mask"])
        XCTAssertNotNil(pruned.metadata?["dmsurgery.depth"])
        XCTAssertEqual(try json(both + "config.json")["mid_block_type"] as? NSNull, NSNull())
        // The width pass cut the student: the mask names its layers, the engine runs it.
        let mask = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(pruned.metadata!["dmsurgery.mask"]!.utf8)) as? [String: Any])
        XCTAssertFalse("\(mask)".contains("mid_block"))
        let io = CLI.fixture("depth/cond_sdlike/small.io.safetensors")
        let forward = try CLI.run(["forward", "--model", both, "--inputs", io, "--output", path("o.safetensors"), "-q"])
        XCTAssertEqual(forward.status, 0, forward.stderr)
    }

    func testFinetuneAndUnlearnDistilADepthPrunedStudentFromItsTeacher() throws {
        let teacher = CLI.fixture("depth/cond_sdlike/teacher")
        let data = CLI.fixture("training/data.safetensors"), forget = CLI.fixture("training/forget.safetensors")
        for variant in ["small", "tiny"] {
            let student = path("\(variant)/")
            XCTAssertEqual(try CLI.run(["prune", "--depth", variant, teacher, student, "-q"]).status, 0)
            let log = path("\(variant).jsonl")
            let finetune = try CLI.run(["finetune", student, path("\(variant)-ft.safetensors"), "--teacher", teacher, "--data", data,
                                        "--steps", "3", "--batch", "2", "--log", log, "-q"])
            XCTAssertEqual(finetune.status, 0, "\(variant): \(finetune.stderr)")
            let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(lines.count, 3, variant)
            let first = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
            let featKD = try XCTUnwrap(first["l_feat"] as? Double, "\(first)")
            XCTAssertGreaterThan(featKD, 0, variant)
            let unlearn = try CLI.run(["unlearn", student, path("\(variant)-ul.safetensors"), "--teacher", teacher, "--data", data,
                                       "--forget", forget, "--steps", "2", "--inner-steps", "1", "--batch", "2", "-q"])
            XCTAssertEqual(unlearn.status, 0, "\(variant): \(unlearn.stderr)")
        }
    }

    func testTinyRefusesUnequalInnermostWidthsAndWritesNothing() throws {
        let out = path("tiny/")
        let run = try CLI.run(["prune", "--depth", "tiny", CLI.fixture("depth/cond_perblock/teacher"), out])
        XCTAssertEqual(run.status, 2)
        XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("depth-unsupported"), run.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "diffusion_pytorch_model.safetensors"))
    }
}
