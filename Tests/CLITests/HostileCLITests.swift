import Foundation
import XCTest

/// The hostile corpus of scripts/hostile-cli run through this build's binary: every case exits with
/// its documented status, a status-2 error is one escaped line, and nothing temporary is left behind.
final class HostileCLITests: XCTestCase {
    func testHostileCorpusGivesDocumentedStatusesAndLeavesNoTemporaryFile() throws {
        let result = try CLI.shell("DMSURGERY_BIN=\"$DMS\" scripts/hostile-cli")
        XCTAssertEqual(result.status, 0, String(decoding: result.stdout, as: UTF8.self))
    }

    func testHDF5RoundTripKeepsAnEmptyMetadataObject() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let json = Array(#"{"__metadata__": {}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#.utf8)
        var bytes = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) } + json
        bytes += [0, 0, 128, 63]
        let input = directory.appendingPathComponent("in.safetensors").path
        FileManager.default.createFile(atPath: input, contents: Data(bytes))
        let h5 = directory.appendingPathComponent("x.h5").path
        XCTAssertEqual(try CLI.run(["convert", input, h5, "-q"]).status, 0)
        let inspected = try CLI.run(["inspect", "--json", h5])
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: inspected.stdout) as? [String: Any])
        XCTAssertEqual((object["metadata"] as? [String: Any])?.count, 0, "metadata: \(object["metadata"] ?? "nil")")
    }

    func testManifestPathWithANewlineReadsBack() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let odd = directory.appendingPathComponent("a\nb.safetensors").path
        try FileManager.default.copyItem(atPath: CLI.fixture("default/diffusion_pytorch_model.safetensors"), toPath: odd)
        let manifest = directory.appendingPathComponent("sums").path
        XCTAssertEqual(try CLI.run(["verify", odd, "--write-sha256", manifest]).status, 0)
        let text = try String(contentsOfFile: manifest, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("\\"), text)
        XCTAssertEqual(text.filter { $0 == "\n" }.count, 1, text)
        let check = try CLI.run(["verify", odd, "--sha256", manifest])
        XCTAssertEqual(check.status, 0, check.stderr)
    }
}
