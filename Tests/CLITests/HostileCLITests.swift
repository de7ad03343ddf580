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

/// A state file is validated on `--resume` like any input: tampered counters and short tensors are
/// refused with one line and exit 2, never a trap.
final class TamperedStateCLITests: XCTestCase {
    private let model = CLI.fixture("engine/cond_small")
    private let data = CLI.fixture("training/data.safetensors")

    /// Writes a state with two steps, applies `tamper` (Python: `state` the parsed header, `blobs` each
    /// tensor's bytes, `values` the decoded `dmsurgery.state` object), rewrites a valid safetensors file
    /// from them, and resumes it.
    private func resume(after tamper: String) throws -> CLIResult {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("out.safetensors").path
        let run = ["finetune", model, out, "--data", data, "--batch", "2", "-q"]
        XCTAssertEqual(try CLI.run(run + ["--steps", "2", "--checkpoint-every", "2"]).status, 0)
        let edit = try CLI.shell("""
            python3 - '\(out).state.safetensors' <<'PY'
            import json, struct, sys
            path = sys.argv[1]
            raw = open(path, "rb").read()
            n = struct.unpack("<Q", raw[:8])[0]
            state = json.loads(raw[8:8 + n]); body = raw[8 + n:]
            names = sorted((k for k in state if k != "__metadata__"), key=lambda k: state[k]["data_offsets"][0])
            blobs = {k: body[state[k]["data_offsets"][0]:state[k]["data_offsets"][1]] for k in names}
            values = json.loads(state["__metadata__"]["dmsurgery.state"])
            \(tamper)
            state["__metadata__"]["dmsurgery.state"] = json.dumps(values)
            body, offset = b"", 0
            for k in names:
                state[k]["data_offsets"] = [offset, offset + len(blobs[k])]; offset += len(blobs[k]); body += blobs[k]
            text = json.dumps(state).encode(); text += b" " * ((8 - len(text) % 8) % 8)
            open(path, "wb").write(struct.pack("<Q", len(text)) + text + body)
            PY
            """)
        XCTAssertEqual(edit.status, 0, edit.stderr)
        return try CLI.run(run + ["--steps", "4", "--resume"])
    }

    private func assertRefused(_ tamper: String, _ rule: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try resume(after: tamper)
        XCTAssertEqual(r.status, 2, r.stderr, file: file, line: line)
        XCTAssertEqual(r.stderr.filter { $0 == "\n" }.count, 1, r.stderr, file: file, line: line)
        XCTAssertTrue(r.stderr.contains(rule), r.stderr, file: file, line: line)
    }

    func testCountersNear2To63AreRefused() throws {
        try assertRefused(#"values["adam/updates"] = str(2**62)"#, "invalid-metadata")
        try assertRefused(#"values["adam/steps"] = json.dumps({k: 2**62 for k in json.loads(values["adam/steps"])})"#, "invalid-metadata")
        try assertRefused(#"values["step"] = "-3""#, "invalid-metadata")
    }

    /// Red team, issue 25 §9.10: an extra moment, a retyped moment and a deleted steps entry were accepted.
    func testExtraRetypedAndOrphanedMomentsAreRefused() throws {
        try assertRefused("""
            first = next(k for k in names if k.startswith("adam/m/"))
            names.append("adam/m/bogus"); state["adam/m/bogus"] = dict(state[first]); blobs["adam/m/bogus"] = blobs[first]
            """, "unexpected-tensor")
        try assertRefused("""
            state[next(k for k in names if k.startswith("adam/v/"))]["dtype"] = "I32"
            """, "unknown-dtype")
        try assertRefused("""
            steps = json.loads(values["adam/steps"]); steps.pop(sorted(steps)[0]); values["adam/steps"] = json.dumps(steps)
            """, "unexpected-tensor")
    }

    func testShortMomentTensorsAreRefused() throws {
        try assertRefused("""
            name = next(k for k in names if k.startswith("adam/v/") and state[k]["shape"][0] > 1)
            state[name]["shape"] = [1]; blobs[name] = blobs[name][:4]
            """, "bad-shape")
    }
}

/// `inspect`'s table stays readable when one tensor name is very long.
final class InspectTableCLITests: XCTestCase {
    func testALongNameDoesNotWidenEveryRow() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let long = String(repeating: "n", count: 300)
        let json = Array(#"{"\#(long)": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#.utf8)
        let bytes = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) } + json + [UInt8](repeating: 0, count: 8)
        let path = directory.appendingPathComponent("long.safetensors").path
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let r = try CLI.run(["inspect", path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = String(decoding: r.stdout, as: UTF8.self).split(separator: "\n")
        let short = try XCTUnwrap(lines.first { $0.hasPrefix("b ") || $0.hasPrefix("  b ") || $0.contains(" b ") && !$0.contains(long) })
        XCTAssertLessThan(short.count, 120, String(short))
        XCTAssertTrue(lines.contains { $0.contains(long) }, "the long name is shown whole")
    }
}
