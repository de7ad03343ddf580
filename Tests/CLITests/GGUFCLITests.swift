import Foundation
import XCTest

/// GGUF through the binary: `convert --quant` checked live by gguf-py, exact float round trips, `diff`
/// and `inspect` on GGUF, and hostile files giving one line and status 2.
final class GGUFCLITests: XCTestCase {
    let source = CLI.fixture("gguf/source.safetensors")

    override func setUpWithError() throws {
        try CLI.requirePython("import gguf, safetensors, numpy")
    }

    func testEveryQuantTypeEqualsGGUFPyAndLoadsInItsReader() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = CLI.repository.appendingPathComponent("Tests/CLITests/gguf_check.py").path
        for quant in ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "f16", "bf16", "f32"] {
            let out = directory.appendingPathComponent("\(quant).gguf").path
            let convert = try CLI.run(["convert", source, out, "--quant", quant, "-q"])
            XCTAssertEqual(convert.status, 0, convert.stderr)
            let check = try CLI.shell("python3 \(script) \(out) \(source) \(quant)")
            XCTAssertEqual(check.status, 0, "\(quant): \(String(decoding: check.stdout, as: UTF8.self)) \(check.stderr)")
        }
    }

    func testWholeFileEqualsGGUFPysWriterGivenTheSameRules() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = CLI.repository.appendingPathComponent("scripts/bench/gguf_reference.py").path
        for quant in ["q8_0", "q5_1"] {
            let ours = directory.appendingPathComponent("ours.gguf").path
            let reference = directory.appendingPathComponent("reference.gguf").path
            XCTAssertEqual(try CLI.run(["convert", source, ours, "--quant", quant, "-q"]).status, 0)
            let write = try CLI.shell("python3 \(script) \(source) \(reference) \(quant)")
            XCTAssertEqual(write.status, 0, write.stderr)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: ours)), try Data(contentsOf: URL(fileURLWithPath: reference)), quant)
        }
    }

    func testFloatFilesRoundTripThroughGGUFByteForByte() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for dtype in ["f32", "f16", "bf16"] {
            let plain = directory.appendingPathComponent("\(dtype).safetensors").path
            let gguf = directory.appendingPathComponent("\(dtype).gguf").path
            let back = directory.appendingPathComponent("\(dtype).back.safetensors").path
            XCTAssertEqual(try CLI.run(["convert", source, plain, "--dtype", dtype, "-q"]).status, 0)
            let toGGUF = try CLI.run(["convert", plain, gguf, "-q"])
            XCTAssertEqual(toGGUF.status, 0, toGGUF.stderr)
            let fromGGUF = try CLI.run(["convert", gguf, back, "-q"])
            XCTAssertEqual(fromGGUF.status, 0, fromGGUF.stderr)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: back)), try Data(contentsOf: URL(fileURLWithPath: plain)), dtype)
        }
    }

    func testDiffReportsTheQuantizationErrorOfEachTensorAgainstTheOriginal() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let q4 = directory.appendingPathComponent("q4.gguf").path
        XCTAssertEqual(try CLI.run(["convert", source, q4, "--quant", "q4_0", "-q"]).status, 0)
        let diff = try CLI.run(["diff", q4, source])
        XCTAssertEqual(diff.status, 1, diff.stderr)
        let text = String(decoding: diff.stdout, as: UTF8.self)
        XCTAssertTrue(text.contains("down_blocks.0.attentions.0.to_q.weight"), text)
        XCTAssertTrue(text.contains("down_blocks.0.resnets.0.conv1.weight"), text)
        XCTAssertFalse(text.contains("conv_in.bias"), "a tensor kept at F32 is identical: \(text)")
        let f32 = directory.appendingPathComponent("f32.gguf").path
        XCTAssertEqual(try CLI.run(["convert", source, f32, "--quant", "f32", "-q"]).status, 0)
        XCTAssertEqual(try CLI.run(["diff", f32, source]).status, 0)
    }

    func testInspectShowsEachTensorsQuantTypeAndTheBitsPerWeight() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("q8.gguf").path
        XCTAssertEqual(try CLI.run(["convert", source, out, "--quant", "q8_0", "-q"]).status, 0)
        let inspect = try CLI.run(["inspect", out, "--no-tensors"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        let text = String(decoding: inspect.stdout, as: UTF8.self)
        XCTAssertTrue(text.contains("gguf bits per weight"), text)
        XCTAssertTrue(text.contains("gguf tensor down_blocks.0.resnets.0.conv1.weight") && text.contains("Q8_0 [18, 256] (original [32, 16, 3, 3])"), text)
        XCTAssertTrue(text.contains("dmsurgery.config"), "config carried as a string key: \(text)")
    }

    func testHostileGGUFFilesGiveOneLineAndStatus2() throws {
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: CLI.fixture("gguf/hostile/expected.json")))) as! [String: String]
        for (file, rule) in expected {
            let path = CLI.fixture("gguf/hostile/" + file)
            for command in ["inspect", "verify"] {
                let result = try CLI.run([command, path])
                XCTAssertEqual(result.status, 2, "\(command) \(file): \(result.stderr)")
                XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
                XCTAssertTrue(result.stderr.contains("\(path): \(rule):"), "\(file): \(result.stderr)")
            }
        }
    }

    func testForwardRunsFromAGGUFAsFromItsSafetensorsOriginal() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = CLI.fixture("default")
        let inputs = directory.appendingPathComponent("in.safetensors").path
        let make = try CLI.shell("""
            python3 -c "import numpy as np; from safetensors.numpy import save_file; r=np.random.default_rng(1); \
            save_file({'sample': r.standard_normal((1,4,8,8)).astype(np.float32), 'timestep': np.array([10], np.int64), \
            'encoder_hidden_states': r.standard_normal((1,4,32)).astype(np.float32)}, '\(inputs)')"
            """)
        XCTAssertEqual(make.status, 0, make.stderr)
        let f32 = directory.appendingPathComponent("m.gguf").path
        let q8 = directory.appendingPathComponent("m8.gguf").path
        XCTAssertEqual(try CLI.run(["convert", model, f32, "-q"]).status, 0)
        XCTAssertEqual(try CLI.run(["convert", model, q8, "--quant", "q8_0", "-q"]).status, 0)
        var outputs: [String] = []
        for (index, source) in [model, f32, q8].enumerated() {
            let out = directory.appendingPathComponent("out\(index).safetensors").path
            let run = try CLI.run(["forward", "--model", source, "--inputs", inputs, "--output", out, "-q"])
            XCTAssertEqual(run.status, 0, run.stderr)
            outputs.append(out)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: outputs[1])), try Data(contentsOf: URL(fileURLWithPath: outputs[0])))
        let close = try CLI.run(["diff", outputs[2], outputs[0], "--rtol", "0.1", "--atol", "0.05"])
        XCTAssertEqual(close.status, 0, String(decoding: close.stdout, as: UTF8.self))
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: outputs[2])), try Data(contentsOf: URL(fileURLWithPath: outputs[0])))
    }

    func testGGUFThroughPipesAndZstd() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("m.gguf").path
        XCTAssertEqual(try CLI.run(["convert", source, file, "--quant", "q5_0", "-q"]).status, 0)
        let piped = try CLI.shell("$DMS convert \(source) - --to gguf --quant q5_0 -q | cat > \(directory.path)/p.gguf && cmp \(file) \(directory.path)/p.gguf")
        XCTAssertEqual(piped.status, 0, piped.stderr)
        let back = try CLI.shell("cat \(file) | $DMS convert - - -q | $DMS diff - \(file)")
        XCTAssertEqual(back.status, 0, back.stderr)
    }

    func testQuantRequiresGGUFOutput() throws {
        let result = try CLI.run(["convert", source, "/tmp/x.safetensors", "--quant", "q8_0"])
        XCTAssertEqual(result.status, 64, result.stderr)
        let bad = try CLI.run(["convert", source, "/tmp/x.gguf", "--quant", "q3_k"])
        XCTAssertEqual(bad.status, 64, bad.stderr)
    }
}
