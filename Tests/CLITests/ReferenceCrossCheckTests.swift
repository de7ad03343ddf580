import Foundation
import XCTest

/// Files written by dmsurgery, loaded by the reference `safetensors` package (Python), hold the values
/// torch itself computes. CI installs the pinned packages (.ci/run); the test installs them if missing.
final class ReferenceCrossCheckTests: XCTestCase {
    override func setUpWithError() throws {
        try CLI.requirePython("import safetensors, torch, numpy")
    }

    func testConvertedFilesLoadInTheReferenceWithTorchValues() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = CLI.repository.appendingPathComponent("Tests/CLITests/reference_check.py").path
        let sources = [CLI.fixture("default/diffusion_pytorch_model.safetensors"), CLI.fixture("safetensors/valid/mixed.safetensors")]
        for source in sources {
            for dtype in ["f16", "bf16", "f32", "f64"] {
                let out = directory.appendingPathComponent("\(dtype).safetensors").path
                let convert = try CLI.run(["convert", source, out, "--dtype", dtype, "-q"])
                XCTAssertEqual(convert.status, 0, convert.stderr)
                let check = try CLI.shell("python3 \(script) \(out) \(source) \(dtype)")
                XCTAssertEqual(check.status, 0, "\(source) -> \(dtype): \(String(decoding: check.stdout, as: UTF8.self)) \(check.stderr)")
            }
        }
        // Every dtype the reference reads back through torch, rewritten unchanged through a pipe.
        let all = CLI.fixture("safetensors/valid/all_dtypes.safetensors")
        let out = directory.appendingPathComponent("all.safetensors").path
        XCTAssertEqual(try CLI.shell("cat \(all) | $DMS convert - - | cat > \(out)").status, 0)
        let check = try CLI.shell("python3 \(script) \(out) \(all)")
        XCTAssertEqual(check.status, 0, String(decoding: check.stdout, as: UTF8.self) + check.stderr)
    }
}
