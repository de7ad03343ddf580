import Foundation
import XCTest

/// `convert UNET OUT.gguf --pipeline-layout ldm`: ComfyUI-GGUF's layout for SD UNets, checked against files made
/// the way its convert.py and patched llama-quantize make them (fixtures/gguf-ldm, gguf-py 0.19.0), against
/// its loader logic and diffusers' converter (gguf_ldm_check.py), and read back by dmsurgery.
final class GGUFLDMCLITests: XCTestCase {
    let unet = CLI.fixture("gguf-ldm/unet")
    let script = CLI.repository.appendingPathComponent("Tests/CLITests/gguf_ldm_check.py").path

    override func setUpWithError() throws {
        try CLI.requirePython("import gguf, diffusers, safetensors")
    }

    private func data(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    func testLDMLayoutEqualsComfyUIGGUFConvertPyByteForByte() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for quant in [nil, "f16"] {
            let out = directory.appendingPathComponent("\(quant ?? "default").gguf").path
            let convert = try CLI.run(["convert", unet, out, "--pipeline-layout", "ldm", "-q"] + (quant.map { ["--quant", $0] } ?? []))
            XCTAssertEqual(convert.status, 0, convert.stderr)
            XCTAssertEqual(try data(out), try data(CLI.fixture("gguf-ldm/comfy-f16.gguf")), quant ?? "default")
        }
    }

    func testLDMLayoutQ4_0EqualsComfyUIGGUFLlamaQuantizeByteForByte() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("q4_0.gguf").path
        let convert = try CLI.run(["convert", unet, out, "--pipeline-layout", "ldm", "--quant", "q4_0", "-q"])
        XCTAssertEqual(convert.status, 0, convert.stderr)
        XCTAssertEqual(try data(out), try data(CLI.fixture("gguf-ldm/comfy-q4_0.gguf")))
    }

    func testEveryQuantTypeIsComfyUIGGUFsBytesAndLoadsThroughItsLoaderAndDiffusers() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var pairs: [String] = []
        for quant in ["none", "q8_0", "q5_0", "q5_1", "q4_1", "q4_0", "f32", "bf16"] {
            let out = directory.appendingPathComponent("\(quant).gguf").path
            let convert = try CLI.run(["convert", unet, out, "--pipeline-layout", "ldm", "-q"] + (quant == "none" ? [] : ["--quant", quant]))
            XCTAssertEqual(convert.status, 0, convert.stderr)
            pairs.append("\(out):\(quant)")
        }
        let check = try CLI.shell("python3 \(script) \(unet) \(pairs.joined(separator: " "))")
        XCTAssertEqual(check.status, 0, "\(String(decoding: check.stdout, as: UTF8.self)) \(check.stderr)")
    }

    func testLDMGGUFReadsBackToTheOriginalWeights() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let f32 = directory.appendingPathComponent("f32.gguf").path
        XCTAssertEqual(try CLI.run(["convert", unet, f32, "--pipeline-layout", "ldm", "--quant", "f32", "-q"]).status, 0)
        let back = directory.appendingPathComponent("back").path
        let toDiffusers = try CLI.run(["convert", f32, back, "--pipeline-layout", "diffusers", "-q"])
        XCTAssertEqual(toDiffusers.status, 0, toDiffusers.stderr)
        let same = try CLI.run(["diff", back, unet])
        XCTAssertEqual(same.status, 0, String(decoding: same.stdout, as: UTF8.self))
        // Quantized: dequantized on read, every tensor close to the original, the bulk not equal to it.
        let q8 = directory.appendingPathComponent("q8.gguf").path
        XCTAssertEqual(try CLI.run(["convert", unet, q8, "--pipeline-layout", "ldm", "--quant", "q8_0", "-q"]).status, 0)
        let back8 = directory.appendingPathComponent("back8").path
        XCTAssertEqual(try CLI.run(["convert", q8, back8, "--pipeline-layout", "diffusers", "-q"]).status, 0)
        let close = try CLI.run(["diff", back8, unet, "--ignore-dtype", "--rtol", "0.02", "--atol", "0.002"])
        XCTAssertEqual(close.status, 0, String(decoding: close.stdout, as: UTF8.self))
        XCTAssertEqual(try CLI.run(["diff", back8, unet, "--ignore-dtype"]).status, 1)
    }

    func testArchitectureKeyIsSDXLForSDXLAndSD1ForSD2AsComfyUIGGUFDetects() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for (family, arch) in [("sdxl", "sdxl"), ("sd2", "sd1"), ("sd1", "sd1")] {
            let out = directory.appendingPathComponent("\(family).gguf").path
            // A pipeline folder gives its unet/.
            let convert = try CLI.run(["convert", CLI.fixture("ldm/\(family)"), out, "--pipeline-layout", "ldm", "--quant", "q8_0", "-q"])
            XCTAssertEqual(convert.status, 0, convert.stderr)
            let read = try CLI.shell("""
                python3 -c "import gguf; r = gguf.GGUFReader('\(out)'); \
                print(r.get_field('general.architecture').contents()); \
                print(all(not t.name.startswith(('model.', 'first_stage', 'cond_stage')) for t in r.tensors))"
                """)
            XCTAssertEqual(String(decoding: read.stdout, as: UTF8.self), "\(arch)\nTrue\n", read.stderr)
        }
    }

    func testLDMGGUFRefusesWhatTheOriginalLayoutCannotHold() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("x.gguf").path
        // Per-block layers_per_block (a depth-pruned UNet) has no original layout.
        let result = try CLI.run(["convert", CLI.fixture("engine/cond_heads"), out, "--pipeline-layout", "ldm"])
        XCTAssertEqual(result.status, 2, result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    func testForwardRunsStraightFromAnLDMLayoutGGUFAsFromTheDiffusersFolder() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let inputs = directory.appendingPathComponent("in.safetensors").path
        let make = try CLI.shell("""
            python3 -c "import numpy as np; from safetensors.numpy import save_file; r=np.random.default_rng(1); \
            save_file({'sample': r.standard_normal((1,4,16,16)).astype(np.float32), 'timestep': np.array([10], np.int64), \
            'encoder_hidden_states': r.standard_normal((1,4,32)).astype(np.float32)}, '\(inputs)')"
            """)
        XCTAssertEqual(make.status, 0, make.stderr)
        let f32 = directory.appendingPathComponent("f32.gguf").path
        let q8 = directory.appendingPathComponent("q8.gguf").path
        XCTAssertEqual(try CLI.run(["convert", unet, f32, "--pipeline-layout", "ldm", "--quant", "f32", "-q"]).status, 0)
        XCTAssertEqual(try CLI.run(["convert", unet, q8, "--pipeline-layout", "ldm", "--quant", "q8_0", "-q"]).status, 0)
        var outputs: [String] = []
        for (index, model) in [unet, f32, q8].enumerated() {
            let out = directory.appendingPathComponent("out\(index).safetensors").path
            let run = try CLI.run(["forward", "--model", model, "--inputs", inputs, "--output", out, "-q"])
            XCTAssertEqual(run.status, 0, run.stderr)
            outputs.append(out)
        }
        XCTAssertEqual(try data(outputs[1]), try data(outputs[0]))
        let close = try CLI.run(["diff", outputs[2], outputs[0], "--rtol", "0.1", "--atol", "0.05"])
        XCTAssertEqual(close.status, 0, String(decoding: close.stdout, as: UTF8.self))
        XCTAssertNotEqual(try data(outputs[2]), try data(outputs[0]))
    }

    func testHostileOriginalNamesInAGGUFGiveOneLineAndStatus2() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // Original UNet names whose structure contradicts itself: read as a model, they must be refused cleanly.
        let cases = [
            "bad-index": "{'input_blocks.0.0.weight': (4, 4, 3, 3), 'input_blocks.99999.0.op.weight': (4, 4, 3, 3)}",
            "conv-in-only": "{'input_blocks.0.0.weight': (4, 4, 3, 3)}",
            "no-whole-blocks": "{'input_blocks.0.0.weight': (4, 4, 3, 3), 'input_blocks.1.0.in_layers.2.weight': (4, 4, 3, 3), 'input_blocks.3.0.op.weight': (4, 4, 3, 3)}",
            "rank-2-conv-in": "{'input_blocks.0.0.weight': (4, 4), 'input_blocks.1.0.in_layers.2.weight': (4, 4, 3, 3), 'output_blocks.0.0.in_layers.2.weight': (4, 4, 3, 3), 'output_blocks.1.0.in_layers.2.weight': (4, 4, 3, 3), 'out.2.weight': (4, 4, 3, 3), 'input_blocks.1.1.proj_in.weight': (4, 4, 1, 1)}",
        ]
        for (name, tensors) in cases {
            let file = directory.appendingPathComponent("\(name).gguf").path
            let make = try CLI.shell("""
                python3 -c "import gguf, numpy as np; w = gguf.GGUFWriter('\(file)', 'sd1'); \
                [w.add_tensor(k, np.zeros(s, np.float32)) for k, s in \(tensors).items()]; \
                w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()"
                """)
            XCTAssertEqual(make.status, 0, make.stderr)
            for command in [["bench", "forward", "--model", file], ["eval", file]] {
                let result = try CLI.run(command)
                XCTAssertEqual(result.status, 2, "\(name) \(command[0]): \(result.stderr)")
                XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
                XCTAssertTrue(result.stderr.contains("error: \(file): ldm-"), result.stderr)
            }
        }
    }
}
