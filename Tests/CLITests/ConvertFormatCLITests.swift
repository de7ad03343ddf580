import Foundation
import XCTest

/// `convert`'s one format table (Workflows/OutputFormat.swift): a suffix names a format, written or
/// refused, never another format's bytes; torch.save zips that torch itself loads; the renamed layout
/// options and their deprecated alias; variants made from a plain folder.
final class ConvertFormatCLITests: XCTestCase {
    let model = CLI.fixture("default")

    func testTorchOutputIsWhatTorchLoadsBackExactly() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let pt = directory.appendingPathComponent("unet.pt").path
        let ckpt = directory.appendingPathComponent("unet.ckpt").path
        let streamed = directory.appendingPathComponent("streamed.bin").path
        XCTAssertEqual(try CLI.run(["convert", model, pt, "-q"]).status, 0)
        XCTAssertEqual(try CLI.run(["convert", model, ckpt, "--dtype", "bf16", "-q"]).status, 0)
        let stream = try CLI.run(["convert", model, "-", "--to", "torch", "--force", "-q"])
        XCTAssertEqual(stream.status, 0, stream.stderr)
        try stream.stdout.write(to: URL(fileURLWithPath: streamed))
        let check = try CLI.shell("""
        python3 -c "
        import sys, torch
        from safetensors.torch import load_file
        ref = load_file('\(model)/diffusion_pytorch_model.safetensors')
        for path, cast in [('\(pt)', None), ('\(streamed)', None), ('\(ckpt)', torch.bfloat16)]:
            for mmap in (False, True):
                sd = torch.load(path, weights_only=True, mmap=mmap)
                assert list(sd) == list(ref), path
                for k, v in ref.items():
                    want = v if cast is None else v.to(cast)
                    assert sd[k].dtype == want.dtype and sd[k].shape == want.shape and torch.equal(sd[k], want), (path, k)
                    assert sd[k].is_contiguous(), (path, k)
        "
        """)
        XCTAssertEqual(check.status, 0, check.stderr)
        // And back: the torch file reads as the same tensors; only the safetensors file's metadata
        // (`format: pt`), which torch files cannot hold, differs (diff's exit 1).
        let diff = try CLI.run(["diff", pt, model, "--json"])
        XCTAssertEqual(diff.status, 1, diff.stderr)
        let report = String(decoding: diff.stdout, as: UTF8.self)
        for expected in ["\"identical\": 208", "\"changed\": []", "\"only_in_a\": []", "\"only_in_b\": []", "\"key\": \"format\""] {
            XCTAssertTrue(report.contains(expected), report)
        }
    }

    func testSuffixesOfUnwrittenFormatsAreRefusedBeforeAnythingIsWritten() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for name in ["m.mlpackage", "m.npz", "m.keras", "m.msgpack", "m.tflite", "config.json", "m.pkl", "m.safetensors.tar"] {
            let out = directory.appendingPathComponent(name).path
            let run = try CLI.run(["convert", model, out])
            XCTAssertEqual(run.status, 2, "\(name): \(run.stderr)")
            let suffix = "." + (name.split(separator: ".").last.map(String.init) ?? "")
            XCTAssertTrue(run.stderr.contains("unsupported") && run.stderr.contains(suffix), run.stderr)
            XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
        // --to that contradicts the suffix is a usage error; a name without a known suffix is safetensors.
        XCTAssertEqual(try CLI.run(["convert", model, directory.appendingPathComponent("m.gguf").path, "--to", "hdf5"]).status, 64)
        let plain = directory.appendingPathComponent("weights").path
        XCTAssertEqual(try CLI.run(["convert", model, plain, "-q"]).status, 0)
        XCTAssertEqual(try CLI.run(["verify", plain, "-q"]).status, 0)
        // --quant names the types of the format it is given for.
        let quant = try CLI.run(["convert", model, directory.appendingPathComponent("m.h5").path, "--quant", "q8_0"])
        XCTAssertEqual(quant.status, 64)
        XCTAssertTrue(quant.stderr.contains("--quant applies to gguf"), quant.stderr)
    }

    func testDeprecatedLayoutWritesWhatItsReplacementWrites() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let pipeline = CLI.fixture("ldm/sd1")
        let new = directory.appendingPathComponent("new.safetensors").path
        let old = directory.appendingPathComponent("old.safetensors").path
        XCTAssertEqual(try CLI.run(["convert", pipeline, new, "--pipeline-layout", "ldm", "-q"]).status, 0)
        let legacy = try CLI.run(["convert", pipeline, old, "--layout", "ldm", "-q"])
        XCTAssertEqual(legacy.status, 0, legacy.stderr)
        XCTAssertTrue(legacy.stderr.contains("--layout is deprecated"), legacy.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: new)), try Data(contentsOf: URL(fileURLWithPath: old)))
        // The old spelling beside its replacement is a usage error.
        XCTAssertEqual(try CLI.run(["convert", pipeline, old, "--layout", "ldm", "--pipeline-layout", "ldm"]).status, 64)
        XCTAssertEqual(try CLI.run(["inspect", model, "--layout", "keras3", "--input-layout", "keras3"]).status, 64)
        // --hdf5-layout applies to HDF5 output only.
        XCTAssertEqual(try CLI.run(["convert", model, new, "--hdf5-layout", "keras3"]).status, 64)
    }

    func testVariantIsWrittenFromAPlainFolderAndDiffusersLoadsIt() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("unet").path
        let convert = try CLI.run(["convert", model, out + "/", "--variant", "fp16", "--dtype", "f16", "-q"])
        XCTAssertEqual(convert.status, 0, convert.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).sorted(), ["config.json", "diffusion_pytorch_model.fp16.safetensors"])
        let load = try CLI.shell("""
        python3 -c "
        import torch, diffusers
        from safetensors.torch import load_file
        unet = diffusers.UNet2DConditionModel.from_pretrained('\(out)', variant='fp16')
        ref = load_file('\(model)/diffusion_pytorch_model.safetensors')
        sd = unet.state_dict()
        assert all(torch.equal(sd[k].half(), v.half()) for k, v in ref.items())
        "
        """)
        XCTAssertEqual(load.status, 0, load.stderr)
    }
}
