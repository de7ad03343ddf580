import Foundation
import TensorFormats
import XCTest

/// End-to-end behaviour of the binary: pipes, exit statuses, error lines, atomic outputs.
final class CLITests: XCTestCase {
    let model = CLI.fixture("default")

    func testInspectJSONHasTheDocumentedKeys() throws {
        let result = try CLI.run(["inspect", "--json", model])
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
        XCTAssertEqual(object["format"] as? String, "diffusers-folder")
        XCTAssertEqual(object["parameters"] as? Int, 203_204)
        XCTAssertNotNil(object["metadata"] as? [String: Any])
        let tensors = try XCTUnwrap(object["tensors"] as? [[String: Any]])
        XCTAssertEqual(tensors.count, 208)
        XCTAssertEqual(tensors.first?["dtype"] as? String, "F32")
        XCTAssertNotNil(tensors.first?["shape"] as? [Int])
        XCTAssertEqual((object["architecture"] as? [String: Any])?["name"] as? String, "UNet2DConditionModel")
    }

    func testPipelineThroughStandardStreamsMatchesFileOutput() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let weights = model + "/diffusion_pytorch_model.safetensors"
        let file = directory.appendingPathComponent("bf16.safetensors").path
        XCTAssertEqual(try CLI.run(["convert", weights, file, "--dtype", "bf16", "--quiet"]).status, 0)
        let piped = try CLI.shell("cat \(weights) | $DMS convert - - --dtype bf16 -q | $DMS convert - - -q")
        XCTAssertEqual(piped.status, 0, piped.stderr)
        XCTAssertEqual(piped.stdout, try Data(contentsOf: URL(fileURLWithPath: file)), "a pipe gives the bytes a file gives")
        let verify = try CLI.run(["verify", "-"], stdin: piped.stdout)
        XCTAssertEqual(verify.status, 0, verify.stderr)
    }

    func testConfigTravelsThroughAPipeAsMetadata() throws {
        let result = try CLI.shell("$DMS convert \(model) - | $DMS inspect --json -")
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
        let architecture = try XCTUnwrap(object["architecture"] as? [String: Any])
        XCTAssertEqual(architecture["name"] as? String, "UNet2DConditionModel")
        XCTAssertEqual(architecture["evidence"] as? String, "config")
    }

    func testMalformedInputGivesOneLineAndStatus2() throws {
        for name in ["offsets-not-contiguous__overlap", "duplicate-key__tensor-same", "truncated__mid-data", "header-too-large__n-u64-max"] {
            let path = CLI.fixture("safetensors/malformed/\(name).safetensors")
            let rule = String(name.split(separator: "_").first!)
            for command in [["inspect", path], ["verify", path], ["convert", path, "-", "--force"], ["diff", path, path]] {
                let result = try CLI.run(command)
                XCTAssertEqual(result.status, 2, "\(command): \(result.stderr)")
                XCTAssertTrue(result.stdout.isEmpty, "\(command) printed to stdout")
                let lines = result.stderr.split(separator: "\n")
                XCTAssertEqual(lines.count, 1, result.stderr)
                XCTAssertTrue(result.stderr.contains(path) && result.stderr.contains(rule), result.stderr)
            }
            let piped = try CLI.run(["verify", "-"], stdinFile: path)
            XCTAssertEqual(piped.status, 2, piped.stderr)
        }
    }

    func testEveryValidFixtureVerifiesAndConvertsThroughAPipe() throws {
        let directory = CLI.repository.appendingPathComponent("fixtures/safetensors/valid")
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) where name.hasSuffix(".safetensors") {
            let path = directory.appendingPathComponent(name).path
            // all_dtypes holds an F8_E8M0 NaN code (0xFF) on purpose: verify reports it (status 1).
            let clean: Int32 = name == "all_dtypes.safetensors" ? 1 : 0
            XCTAssertEqual(try CLI.run(["verify", path]).status, clean, name)
            for dtype in ["bf16", "f16", "f64"] {
                let result = try CLI.shell("cat \(path) | $DMS convert - - --dtype \(dtype) -q | $DMS verify -")
                XCTAssertEqual(result.status, clean, "\(name) -> \(dtype): \(result.stderr)")
            }
        }
    }

    func testZeroSizeFloatTensorsAreScannedAndCast() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("empty.safetensors").path
        try SafetensorsWriter.writeFloats([("empty", [3, 0], []), ("scalar", [], [1])], to: path)
        XCTAssertEqual(try CLI.run(["verify", path]).status, 0)
        XCTAssertEqual(try CLI.run(["verify", "-"], stdin: try Data(contentsOf: URL(fileURLWithPath: path))).status, 0)
        XCTAssertEqual(try CLI.shell("$DMS convert \(path) - --dtype bf16 | $DMS diff - \(path) --ignore-dtype --rtol 0.01").status, 0)
    }

    func testVerifyReportsNonFiniteValuesWithStatus1() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("nan.safetensors").path
        try SafetensorsWriter.writeFloats([("clean", [2], [1, 2]), ("dirty", [4], [.nan, .infinity, -.infinity, .nan])], to: path)
        let result = try CLI.run(["verify", "--json", path])
        XCTAssertEqual(result.status, 1)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
        let bad = try XCTUnwrap(object["non_finite"] as? [[String: Any]])
        XCTAssertEqual(bad.count, 1)
        XCTAssertEqual(bad[0]["name"] as? String, "dirty")
        XCTAssertEqual(bad[0]["nan"] as? Int, 2)
        XCTAssertEqual(bad[0]["pos_inf"] as? Int, 1)
        XCTAssertEqual(bad[0]["neg_inf"] as? Int, 1)
    }

    func testSha256ManifestsAgreeWithSha256sum() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let manifest = directory.appendingPathComponent("SHA256SUMS").path
        let sharded = CLI.fixture("sharded/hf/model.safetensors.index.json")
        XCTAssertEqual(try CLI.run(["verify", sharded, "--write-sha256", manifest]).status, 0)
        let ours = try String(contentsOfFile: manifest, encoding: .utf8)
        XCTAssertEqual(ours.split(separator: "\n").count, 16)
        let reference = try CLI.shell("cd fixtures/sharded/hf && sha256sum model-*.safetensors")
        let referenceDigests = Set(reference.stdout.split(separator: UInt8(ascii: "\n")).map { String(decoding: $0.prefix(64), as: UTF8.self) })
        XCTAssertEqual(Set(ours.split(separator: "\n").map { String($0.prefix(64)) }), referenceDigests)
        XCTAssertEqual(try CLI.run(["verify", sharded, "--sha256", manifest]).status, 0)
        try ours.replacingOccurrences(of: String(ours.prefix(1)), with: ours.hasPrefix("0") ? "1" : "0", options: [], range: ours.startIndex..<ours.index(after: ours.startIndex))
            .write(toFile: manifest, atomically: true, encoding: .utf8)
        let tampered = try CLI.run(["verify", sharded, "--sha256", manifest])
        XCTAssertEqual(tampered.status, 1)
        XCTAssertTrue(String(decoding: tampered.stdout, as: UTF8.self).contains("MISMATCH"))
        let file = CLI.fixture("default/diffusion_pytorch_model.safetensors")
        let streamed = try CLI.run(["verify", "-", "--write-sha256", "-"], stdin: try Data(contentsOf: URL(fileURLWithPath: file)))
        let direct = try CLI.shell("sha256sum < \(file)")
        XCTAssertEqual(String(decoding: streamed.stdout.prefix(64), as: UTF8.self), String(decoding: direct.stdout.prefix(64), as: UTF8.self))
    }

    func testDiffStatusFollowsTolerances() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let bf16 = directory.appendingPathComponent("bf16.safetensors").path
        XCTAssertEqual(try CLI.run(["convert", model, bf16, "--dtype", "bf16", "-q"]).status, 0)
        XCTAssertEqual(try CLI.run(["diff", model, model]).status, 0)
        let exact = try CLI.run(["diff", "--json", bf16, model, "--ignore-metadata"])
        XCTAssertEqual(exact.status, 1)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: exact.stdout) as? [String: Any])
        let changed = try XCTUnwrap(object["changed"] as? [[String: Any]])
        XCTAssertEqual(changed.count, 208)
        let worst = changed.compactMap { $0["max_rel"] as? Double }.max() ?? 1
        XCTAssertLessThanOrEqual(worst, 1.0 / 256, "bf16 keeps 8 significant bits")
        XCTAssertEqual(try CLI.run(["diff", bf16, model, "--ignore-dtype", "--ignore-metadata", "--rtol", "0.004", "--atol", "1e-30"]).status, 0)
    }

    func testUsageErrorsExit64() throws {
        XCTAssertEqual(try CLI.run(["convert", model]).status, 64)
        XCTAssertEqual(try CLI.run(["convert", model, "-", "--dtype", "f8"]).status, 64)
        XCTAssertEqual(try CLI.run(["diff", "-", "-"]).status, 64)
        XCTAssertEqual(try CLI.run(["convert", model, "x.safetensors", "--shard-size", "lots"]).status, 64)
        XCTAssertEqual(try CLI.run(["convert", model, "x.safetensors", "--shard-size", "1e30GB"]).status, 64)
    }

    func testOutputEqualToInputIsRefused() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("m.safetensors").path
        try FileManager.default.copyItem(atPath: CLI.fixture("default/diffusion_pytorch_model.safetensors"), toPath: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let result = try CLI.run(["convert", path, path, "--dtype", "bf16"])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderr.contains("output-is-input"), result.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
    }

    func testShardedOutputReadsBackAsTheInput() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try CLI.run(["convert", model, directory.appendingPathComponent("model.safetensors").path, "--shard-size", "100KB", "-q"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        XCTAssertTrue(files.contains("model.safetensors.index.json"))
        XCTAssertTrue(files.contains("config.json"), "the model config goes beside the shards")
        XCTAssertEqual(files.filter { $0.hasPrefix("model-") }.count, files.count - 2)
        XCTAssertGreaterThan(files.count, 5)
        let back = try CLI.run(["diff", directory.appendingPathComponent("model.safetensors.index.json").path, model])
        XCTAssertEqual(back.status, 0, String(decoding: back.stdout, as: UTF8.self))
    }

    func testFolderOutputWritesConfigBesideWeights() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try CLI.shell("$DMS convert \(model) - | $DMS convert - \(directory.path)/out/ -q")
        XCTAssertEqual(result.status, 0, result.stderr)
        let config = try String(contentsOfFile: directory.path + "/out/config.json", encoding: .utf8)
        XCTAssertEqual(config, try String(contentsOfFile: model + "/config.json", encoding: .utf8))
        let weights = try Checkpoint.open(directory.path + "/out")
        XCTAssertNil(weights.metadata?[MetadataKey.config], "the config lives in config.json, not twice")
        XCTAssertEqual(try CLI.run(["diff", directory.path + "/out", model]).status, 0)
    }

    func testInterruptLeavesNoPartialOutput() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = Process()
        process.executableURL = CLI.binary
        process.arguments = ["convert", "-", directory.appendingPathComponent("out.safetensors").path, "--dtype", "bf16"]
        let input = Pipe()
        process.standardInput = input
        process.standardError = FileHandle.nullDevice
        try process.run()
        let bytes = try Data(contentsOf: URL(fileURLWithPath: CLI.fixture("default/diffusion_pytorch_model.safetensors")))
        // Header and part of the data: the converter is then blocked mid-output with a temporary file open.
        try input.fileHandleForWriting.write(contentsOf: bytes.prefix(bytes.count / 2))
        var sawTemporary = false
        for _ in 0..<100 where !sawTemporary {
            usleep(20_000)
            sawTemporary = (try FileManager.default.contentsOfDirectory(atPath: directory.path)).contains { $0.hasSuffix(".tmp.dmsurgery") }
        }
        XCTAssertTrue(sawTemporary, "the output is written to a temporary file first")
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 130)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
    }

    func testOutputToAFIFOIsWrittenInPlaceNotReplaced() throws {
        // Renaming a temporary file over a device or FIFO would replace the node (as root, /dev/null).
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let d = directory.path
        let result = try CLI.shell("""
            mkfifo \(d)/pipe && (cat \(d)/pipe > \(d)/got &) && $DMS convert \(model) \(d)/pipe -q && sleep 0.2 \
              && test -p \(d)/pipe && $DMS convert \(model) - -q | cmp - \(d)/got
            """)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: d).contains { $0.hasSuffix(".tmp.dmsurgery") })
    }

    func testBinaryOutputToATerminalIsRefused() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else { throw XCTSkip("script(1) is not installed") }
        let result = try CLI.shell("script -qec \"$DMS convert \(model) -\" /dev/null")
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(String(decoding: result.stdout, as: UTF8.self).contains("binary-to-terminal"))
    }
}

/// Reads an in-memory buffer as a stream.
final class DataSource: ByteSource {
    let name = "-"
    private let data: Data
    private var position = 0
    init(_ data: Data) { self.data = data }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(TensorFormatError) -> Int {
        let n = min(buffer.count, data.count - position)
        if n > 0 { data.copyBytes(to: buffer.bindMemory(to: UInt8.self), from: position..<(position + n)) }
        position += n
        return n
    }
}
