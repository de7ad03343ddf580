import Foundation
import XCTest

/// PyTorch files through the CLI, checked live against torch: generate.py writes fresh files with
/// another seed than the committed fixtures, dmsurgery converts them, pickle_check.py compares the
/// result with `torch.load(weights_only=True)`.
final class PickleCLITests: XCTestCase {
    override func setUpWithError() throws {
        try CLI.requirePython("import safetensors, torch")
    }

    func testConvertedTorchFilesHoldWhatTorchLoadReturns() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let generate = try CLI.shell("python3 fixtures/pickle/generate.py \(directory.path) --seed 17")
        XCTAssertEqual(generate.status, 0, generate.stderr)
        for name in ["zip.pt", "legacy.pt", "sd.ckpt", "model_ema.pth", "module.bin", "tensor.pt", "big_endian.pt"] {
            let source = directory.appendingPathComponent(name).path
            let out = directory.appendingPathComponent(name + ".safetensors").path
            let convert = try CLI.run(["convert", source, out, "-q"])
            XCTAssertEqual(convert.status, 0, "\(name): \(convert.stderr)")
            let check = try CLI.shell("python3 Tests/CLITests/pickle_check.py \(out) \(source)")
            XCTAssertEqual(check.status, 0, "\(name): \(String(decoding: check.stdout, as: UTF8.self)) \(check.stderr)")
        }
        // Every read command takes a pickle.
        let ckpt = directory.appendingPathComponent("sd.ckpt").path
        XCTAssertEqual(try CLI.run(["inspect", ckpt]).status, 0)
        XCTAssertEqual(try CLI.run(["verify", ckpt]).status, 0)
        let diff = try CLI.run(["diff", ckpt, directory.appendingPathComponent("sd.ckpt.safetensors").path])
        XCTAssertEqual(diff.status, 0, diff.stderr)
    }

    func testFreshPayloadsAreRefusedAndLeaveNoTrace() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let marker = directory.appendingPathComponent("ran").path
        let script = """
        import os, pickle, subprocess, torch
        class Call:
            def __init__(self, fn, args): self.fn, self.args = fn, args
            def __reduce__(self): return self.fn, self.args
        m = '\(marker)'
        for name, p in {"system": Call(os.system, ("touch " + m,)), "eval": Call(eval, ("open('" + m + "', 'w')",)),
                        "popen": Call(subprocess.Popen, (["touch", m],))}.items():
            torch.save({"w": torch.ones(1), "x": p}, '\(directory.path)/' + name + '.ckpt')
            torch.save({"w": torch.ones(1), "x": p}, '\(directory.path)/' + name + '.legacy.pt', _use_new_zipfile_serialization=False)
        """
        let made = try CLI.shell("python3 -c \"$(cat <<'PY'\n\(script)\nPY\n)\"")
        XCTAssertEqual(made.status, 0, made.stderr)
        for (stem, global) in [("system", "posix.system"), ("eval", "builtins.eval"), ("popen", "subprocess.Popen")] {
            for suffix in [".ckpt", ".legacy.pt"] {
                let input = directory.appendingPathComponent(stem + suffix).path
                let out = directory.appendingPathComponent(stem + ".safetensors").path
                let convert = try CLI.run(["convert", input, out])
                XCTAssertEqual(convert.status, 2, convert.stderr)
                XCTAssertTrue(convert.stderr.contains("pickle-global-refused") && convert.stderr.contains(global), convert.stderr)
                XCTAssertFalse(FileManager.default.fileExists(atPath: out))
                XCTAssertEqual(try CLI.run(["inspect", input]).status, 2)
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "a payload ran")
    }

    func testACheckpointOfAnotherFormatIsNamed() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let numpy = directory.appendingPathComponent("model.safetensors")
        try Data([0x93] + Array("NUMPY".utf8) + [1, 0, 118, 0] + Array("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }".utf8)).write(to: numpy)
        let result = try CLI.run(["inspect", numpy.path])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderr.contains("wrong-format") && result.stderr.contains("NumPy"), result.stderr)
        // A torch file on standard input is spooled and read.
        let piped = try CLI.shell("cat fixtures/pickle/sd.ckpt | $DMS inspect -")
        XCTAssertEqual(piped.status, 0, piped.stderr)
        XCTAssertTrue(String(decoding: piped.stdout, as: UTF8.self).contains("pytorch"))
    }
}
