import Foundation
import XCTest

/// HDF5 and zstd through the binary: formats chosen by suffix, pipes, refusal of unsafe files.
final class HDF5AndZstdCLITests: XCTestCase {
    let model = CLI.fixture("default")

    func testSafetensorsToHDF5AndBackThroughPipesIsByteIdentical() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = CLI.fixture("safetensors/valid/all_dtypes.safetensors")
        let h5 = directory.appendingPathComponent("all.h5").path
        XCTAssertEqual(try CLI.run(["convert", source, h5, "--compress", "zstd:3", "-q"]).status, 0)
        let back = try CLI.shell("cat \(h5) | $DMS convert - - -q")
        XCTAssertEqual(back.status, 0, back.stderr)
        XCTAssertEqual(back.stdout, try Data(contentsOf: URL(fileURLWithPath: source)))
        XCTAssertEqual(try CLI.run(["diff", h5, source]).status, 0)
    }

    func testZstdOutputDecompressesWithTheZstdTool() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/zstd") else { throw XCTSkip("zstd(1) is not installed") }
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let plain = directory.appendingPathComponent("m.safetensors").path
        let packed = directory.appendingPathComponent("m.safetensors.zst").path
        XCTAssertEqual(try CLI.run(["convert", model, plain, "-q"]).status, 0)
        XCTAssertEqual(try CLI.run(["convert", model, packed, "-q"]).status, 0)
        let unpacked = try CLI.shell("zstd -dc \(packed)")
        XCTAssertEqual(unpacked.status, 0, unpacked.stderr)
        XCTAssertEqual(unpacked.stdout, try Data(contentsOf: URL(fileURLWithPath: plain)))
        let verify = try CLI.shell("cat \(packed) | $DMS verify -")
        XCTAssertEqual(verify.status, 0, verify.stderr)
    }

    func testUnsafeAndBrokenHDF5FilesGiveOneLineAndStatus2() throws {
        for name in ["unsafe_external_link", "unsafe_soft_link", "unsafe_virtual", "unsafe_external_storage", "unsafe_huge",
                     "broken_truncated", "broken_garbage"] {
            let path = CLI.fixture("hdf5/\(name).h5")
            let result = try CLI.run(["verify", path])
            XCTAssertEqual(result.status, 2, "\(name): \(result.stderr)")
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains(path), result.stderr)
        }
        let allowed = try CLI.run(["inspect", "--allow-unsafe-h5", CLI.fixture("hdf5/unsafe_huge.h5")])
        XCTAssertNotEqual(allowed.status, 64, allowed.stderr)
    }

    func testKerasFilesInspectWithTheirLayout() throws {
        for (name, layout) in [("keras3.weights.h5", "keras3"), ("keras2_model.h5", "keras2")] {
            let result = try CLI.run(["inspect", "--json", CLI.fixture("hdf5/" + name)])
            XCTAssertEqual(result.status, 0, result.stderr)
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
            XCTAssertEqual(object["format"] as? String, "hdf5")
            XCTAssertEqual((object["details"] as? [String: Any])?["hdf5 layout"] as? String, layout)
            XCTAssertGreaterThan((object["tensors"] as? [Any])?.count ?? 0, 5)
        }
    }
}
