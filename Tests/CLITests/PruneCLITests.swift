import Foundation
import TensorFormats
import XCTest

/// `prune` through the binary: masks against an independent PyTorch computation and pruned forwards
/// against diffusers models rebuilt with the pruned shapes (fixtures/pruning/generate.py).
final class PruneCLITests: XCTestCase {
    private let configs = ["cond_small", "cond_list", "ddpm_small", "ddpm_cifar_like"]
    private var directory: URL!

    override func setUpWithError() throws { directory = try CLI.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    private func keptUnits(_ maskFile: String) throws -> [String: [Int]] {
        let mask = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: maskFile))) as! [String: Any]
        var kept: [String: [Int]] = [:]
        for layer in mask["layers"] as! [[String: Any]] { kept[layer["name"] as! String] = layer["kept"] as? [Int] }
        return kept
    }

    private func maxRelativeError(_ got: [Float], _ want: [Float]) -> Float {
        XCTAssertEqual(got.count, want.count)
        let scale = want.map(abs).max() ?? 1
        return zip(got, want).map { abs($0 - $1) }.max().map { $0 / max(scale, 1e-12) } ?? 1
    }

    private func tensorBytes(_ file: String) throws -> [String: [UInt8]] {
        let checkpoint = try Checkpoint.open(file)
        var out: [String: [UInt8]] = [:]
        for entry in checkpoint.entries { out[entry.name] = try checkpoint.bytes(of: entry) }
        return out
    }

    /// Every criterion: the kept units equal the reference (l1, l2, l1 --global, taylor: PyTorch's own
    /// computation; random: the criterion's SplitMix64 specification, implemented in generate.py), and
    /// the pruned checkpoint's forward equals the diffusers model rebuilt from the pruned shapes.
    func testEveryCriterionMatchesTheTorchRebuiltModel() throws {
        let cases: [(key: String, arguments: (String) -> [String])] = [
            ("l1", { _ in ["--criterion", "l1"] }),
            ("l2", { _ in ["--criterion", "l2"] }),
            ("l1-global", { _ in ["--criterion", "l1", "--global"] }),
            ("random", { _ in ["--criterion", "random", "--seed", "7"] }),
            ("taylor", { name in ["--criterion", "taylor", "--data", CLI.fixture("pruning/\(name)/data.safetensors"), "--timesteps", "20"] }),
        ]
        for name in configs {
            let model = CLI.fixture("engine/\(name)")
            let reference = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: CLI.fixture("pruning/\(name)/reference.json")))) as! [String: [String: [Int]]]
            let expected = try Checkpoint.open(CLI.fixture("pruning/\(name)/expected.safetensors"))
            for (key, arguments) in cases {
                let label = "\(name) \(key)"
                let pruned = path("\(name).\(key).safetensors"), mask = path("\(name).\(key).json")
                let prune = try CLI.run(["prune", "--ratio", "0.5"] + arguments(name) + [model, pruned, "--emit-mask", mask, "-q"])
                XCTAssertEqual(prune.status, 0, "\(label): \(prune.stderr)")
                XCTAssertEqual(try keptUnits(mask), reference[key], label)
                let out = path("\(name).\(key).out.safetensors")
                let forward = try CLI.run(["forward", "--model", pruned, "--inputs", model + "/io.safetensors", "--output", out, "-q"])
                XCTAssertEqual(forward.status, 0, "\(label): \(forward.stderr)")
                let error = maxRelativeError(try Checkpoint.open(out).floats(named: "sample"), try expected.floats(named: "out.\(key)"))
                XCTAssertLessThanOrEqual(error, 1e-4, label)
            }
        }
    }

    func testRatioZeroKeepsEveryTensorByteIdentical() throws {
        for name in ["cond_list", "ddpm_small"] {
            let out = path("\(name).dense.safetensors")
            let result = try CLI.run(["prune", "--ratio", "0", CLI.fixture("engine/\(name)"), out, "-q"])
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertEqual(try tensorBytes(out), try tensorBytes(CLI.fixture("engine/\(name)/diffusion_pytorch_model.safetensors")), name)
        }
    }

    func testEmittedMaskAppliedIsByteIdenticalToDirectPruning() throws {
        let model = CLI.fixture("engine/cond_small")
        let direct = path("direct.safetensors"), mask = path("mask.json"), applied = path("applied.safetensors")
        XCTAssertEqual(try CLI.run(["prune", "--criterion", "l2", "--global", "--ratio", "0.4", model, direct, "-q"]).status, 0)
        // --emit-mask without OUT writes only the mask.
        XCTAssertEqual(try CLI.run(["prune", "--criterion", "l2", "--global", "--ratio", "0.4", model, "--emit-mask", mask, "-q"]).status, 0)
        let result = try CLI.run(["prune", "--mask", mask, model, applied, "-q"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: applied)), try Data(contentsOf: URL(fileURLWithPath: direct)))
    }

    func testPrunedCheckpointCarriesConfigAndMaskAndPrunesSmaller() throws {
        let out = path("pruned.safetensors")
        let result = try CLI.run(["prune", "--ratio", "0.5", "--only", "up_blocks.*", CLI.fixture("engine/cond_small"), out, "-q"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let pruned = try Checkpoint.open(out)
        let dense = try Checkpoint.open(CLI.fixture("engine/cond_small"))
        XCTAssertEqual(pruned.metadata?["dmsurgery.config"], dense.configJSON)
        let mask = try XCTUnwrap(pruned.metadata?["dmsurgery.mask"])
        XCTAssertTrue(mask.contains("\"criterion\":\"l1\""), mask)
        XCTAssertLessThan(pruned.parameterCount, dense.parameterCount)
        // --only: the down path keeps its widths, the up path loses half its groups.
        XCTAssertEqual(pruned.entry(named: "down_blocks.0.resnets.0.conv1.weight")?.shape, [16, 16, 3, 3])
        XCTAssertEqual(pruned.entry(named: "up_blocks.0.resnets.0.conv1.weight")?.shape, [16, 64, 3, 3])
    }

    func testPrunesThroughPipesIntoForward() throws {
        let model = CLI.fixture("engine/ddpm_small")
        let out = path("piped.safetensors")
        let result = try CLI.shell("$DMS convert \(model) - -q | $DMS prune --ratio 0.4 - - -q | $DMS forward --model - --inputs \(model)/io.safetensors --output \(out) -q")
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try Checkpoint.open(out).entry(named: "sample")?.shape, [2, 3, 8, 8])
    }

    func testBadMasksExitTwoNamingTheLayer() throws {
        let model = CLI.fixture("engine/ddpm_small")
        let mask = path("good.json")
        XCTAssertEqual(try CLI.run(["prune", model, "--emit-mask", mask, "-q"]).status, 0)
        let good = try String(contentsOfFile: mask, encoding: .utf8)
        let layer = "down_blocks.1.attentions.0"
        XCTAssertTrue(good.contains("\"name\":\"\(layer)\",\"kind\":\"attention\",\"units\":4"), good)
        let line = good.split(separator: "\n").first { $0.contains("\"name\":\"\(layer)\"") }!
            .trimmingCharacters(in: CharacterSet(charactersIn: " ,"))
        let cases: [(String, String, String?)] = [
            ("wrong layer name", good.replacingOccurrences(of: "\"name\":\"\(layer)\"", with: "\"name\":\"down_blocks.1.attentions.9\""), "down_blocks.1.attentions.9"),
            ("index out of range", good.replacingOccurrences(of: String(line), with: "{\"name\":\"\(layer)\",\"kind\":\"attention\",\"units\":4,\"unit_size\":8,\"kept\":[0,4]}"), layer),
            ("duplicate index", good.replacingOccurrences(of: String(line), with: "{\"name\":\"\(layer)\",\"kind\":\"attention\",\"units\":4,\"unit_size\":8,\"kept\":[1,1]}"), layer),
            ("wrong unit count", good.replacingOccurrences(of: String(line), with: "{\"name\":\"\(layer)\",\"kind\":\"attention\",\"units\":5,\"unit_size\":8,\"kept\":[1]}"), layer),
            ("no unit kept", good.replacingOccurrences(of: String(line), with: "{\"name\":\"\(layer)\",\"kind\":\"attention\",\"units\":4,\"unit_size\":8,\"kept\":[]}"), layer),
            ("malformed JSON", String(good.dropLast(3)), nil),
        ]
        for (label, text, named) in cases {
            XCTAssertNotEqual(text, good, label)
            let bad = path("bad.json")
            try text.write(toFile: bad, atomically: true, encoding: .utf8)
            let out = path("never.safetensors")
            let result = try CLI.run(["prune", "--mask", bad, model, out])
            XCTAssertEqual(result.status, 2, label)
            XCTAssertTrue(result.stderr.hasPrefix("dmsurgery: error: \(bad): bad-mask: "), "\(label): \(result.stderr)")
            if let named { XCTAssertTrue(result.stderr.contains("layer '\(named)'"), "\(label): \(result.stderr)") }
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, label)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), label)
        }
    }

    func testWidthsThatAreNotWholeUnitsAreRefusedNamingTheTensor() throws {
        let dense = try Checkpoint.open(CLI.fixture("engine/ddpm_small"))
        let broken = "down_blocks.0.resnets.0.conv1.weight"   // 16 channels in groups of 2: keep 15
        var tensors: [(name: String, dtype: DType, shape: [Int], bytes: [UInt8])] = []
        for entry in dense.entries {
            var bytes = try dense.bytes(of: entry), shape = entry.shape
            if entry.name == broken {
                shape[0] -= 1
                bytes = Array(bytes.prefix(shape.reduce(4, *)))
            }
            tensors.append((entry.name, entry.dtype, shape, bytes))
        }
        let file = path("broken.safetensors")
        try SafetensorsWriter.write(tensors, metadata: Metadata([("dmsurgery.config", dense.configJSON!)]), to: file)
        let result = try CLI.run(["prune", file, path("never.safetensors")])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderr.hasPrefix("dmsurgery: error: \(file): bad-shape: "), result.stderr)
        XCTAssertTrue(result.stderr.contains("(tensor '\(broken)')"), result.stderr)
    }

    func testTaylorDataProblemsNameTheDataFile() throws {
        let data = path("data.safetensors")
        // cond_small is conditional: x0 alone is not enough.
        try SafetensorsWriter.writeFloats([("x0", [2, 4, 8, 8], [Float](repeating: 0.5, count: 512))], to: data)
        let result = try CLI.run(["prune", "--criterion", "taylor", "--data", data, "--timesteps", "2",
                                  CLI.fixture("engine/cond_small"), path("never.safetensors")])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderr.hasPrefix("dmsurgery: error: \(data): missing-tensor: "), result.stderr)
        XCTAssertTrue(result.stderr.contains("(tensor 'cond')"), result.stderr)
        let usage = try CLI.run(["prune", "--criterion", "taylor", CLI.fixture("engine/cond_small"), path("never.safetensors")])
        XCTAssertEqual(usage.status, 64)
    }
}
