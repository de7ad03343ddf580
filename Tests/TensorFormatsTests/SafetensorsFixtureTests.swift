import Foundation
import TensorFormats
import XCTest

/// The parser and writer against files written (or broken) with the reference `safetensors` package.
final class SafetensorsFixtureTests: XCTestCase {
    func testValidFixturesMatchTheManifest() throws {
        let manifest = try Fixtures.json("safetensors/valid/manifest.json")
        let files = try XCTUnwrap(manifest["files"] as? [[String: Any]])
        XCTAssertGreaterThan(files.count, 8)
        for file in files {
            let name = try XCTUnwrap(file["file"] as? String)
            let checkpoint = try Checkpoint.open(Fixtures.path("safetensors/valid/" + name))
            XCTAssertEqual(checkpoint.files[0].header.headerLength, file["header_length"] as? Int, name)
            let expectedMetadata = (file["metadata"] as? [[String]])?.map { ($0[0], $0[1]) }
            XCTAssertEqual(checkpoint.metadata?.keys, expectedMetadata?.map(\.0), name)
            XCTAssertEqual(checkpoint.metadata?.entries.map(\.value), expectedMetadata?.map(\.1), name)
            let tensors = try XCTUnwrap(file["tensors"] as? [[String: Any]])
            XCTAssertEqual(checkpoint.entries.count, tensors.count, name)
            for tensor in tensors {
                let tensorName = try XCTUnwrap(tensor["name"] as? String)
                let entry = try XCTUnwrap(checkpoint.entry(named: tensorName), "\(name): \(tensorName)")
                XCTAssertEqual(entry.dtype.rawValue, tensor["dtype"] as? String, tensorName)
                XCTAssertEqual(entry.shape, tensor["shape"] as? [Int], tensorName)
                XCTAssertEqual([entry.info.dataOffsets.lowerBound, entry.info.dataOffsets.upperBound], tensor["data_offsets"] as? [Int], tensorName)
                XCTAssertEqual(sha256Hex(try checkpoint.bytes(of: entry)), tensor["sha256"] as? String, "\(name): \(tensorName)")
            }
        }
    }

    func testRewritingReferenceFilesReproducesTheirBytes() throws {
        let manifest = try Fixtures.json("safetensors/valid/manifest.json")
        var checked = 0
        for file in try XCTUnwrap(manifest["files"] as? [[String: Any]]) where file["written_by_reference"] as? Bool == true {
            let path = Fixtures.path("safetensors/valid/" + (file["file"] as! String))
            let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            let checkpoint = try Checkpoint.open(path)
            let tensors = try checkpoint.entries.map { ($0.name, $0.dtype, $0.shape, try checkpoint.bytes(of: $0)) }
            let writer = SafetensorsWriter(tensors: tensors.map { ($0.0, $0.1, $0.2) }, metadata: checkpoint.metadata)
            var rewritten = writer.header.serializedPrefix()
            for info in writer.header.tensors { rewritten += tensors.first { $0.0 == info.name }!.3 }
            XCTAssertEqual(rewritten, original, path)
            checked += 1
        }
        XCTAssertGreaterThan(checked, 5)
    }

    func testMalformedFixturesAreRejectedWithTheirRule() throws {
        let manifest = try Fixtures.json("safetensors/malformed/manifest.json")
        let files = try XCTUnwrap(manifest["files"] as? [[String: Any]])
        XCTAssertGreaterThan(files.count, 50)
        for file in files {
            let name = try XCTUnwrap(file["file"] as? String)
            let path = Fixtures.path("safetensors/malformed/" + name)
            do {
                _ = try Checkpoint.open(path)
                XCTFail("\(name) was accepted")
            } catch let error as TensorFormatError {
                XCTAssertEqual(error.code.rawValue, file["rule"] as? String, "\(name): \(error)")
                XCTAssertEqual(error.tensor, file["tensor"] as? String, "\(name): \(error)")
                XCTAssertEqual(error.file, path, name)
            }
        }
    }

    func testMalformedFixturesAreRejectedOnAStreamToo() throws {
        let manifest = try Fixtures.json("safetensors/malformed/manifest.json")
        for file in try XCTUnwrap(manifest["files"] as? [[String: Any]]) {
            let name = file["file"] as! String
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("safetensors/malformed/" + name))))
            do {
                let checkpoint = try Checkpoint.openStream(MemorySource(bytes, step: 7), name: "-")
                for entry in checkpoint.entries { try checkpoint.read(entry) { _ in } }
                try checkpoint.finish()
                XCTFail("\(name) was accepted on a stream")
            } catch let error as TensorFormatError {
                let rule = file["rule"] as! String
                // A stream cannot know the size up front: running out early is a truncation.
                let accepted = rule == "header-past-eof" ? ["header-past-eof"] : [rule]
                XCTAssertTrue(accepted.contains(error.code.rawValue), "\(name): \(error)")
                XCTAssertEqual(error.file, "-")
            }
        }
    }

    func testValidFixturesReadTheSameFromAStream() throws {
        for name in ["all_dtypes", "subbyte", "zero_size", "rank0", "empty", "whitespace", "unicode_names"] {
            let path = Fixtures.path("safetensors/valid/\(name).safetensors")
            let mapped = try Checkpoint.open(path)
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            let streamed = try Checkpoint.openStream(MemorySource(bytes, step: 5), name: "-")
            XCTAssertEqual(streamed.entries.map(\.info), mapped.entries.map(\.info), name)
            for entry in streamed.entries {
                var got: [UInt8] = []
                try streamed.read(entry, chunkBytes: 24) { got += $0 }
                XCTAssertEqual(got, try mapped.bytes(of: mapped.entry(named: entry.name)!), "\(name): \(entry.name)")
            }
            try streamed.finish()
        }
    }

    func testStreamSpoolGivesRandomAccess() throws {
        let path = Fixtures.path("safetensors/valid/all_dtypes.safetensors")
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let streamed = try Checkpoint.openStream(MemorySource(bytes), name: "-").withRandomAccess()
        let mapped = try Checkpoint.open(path)
        for entry in mapped.entries.reversed() {
            XCTAssertEqual(try streamed.bytes(of: streamed.entry(named: entry.name)!), try mapped.bytes(of: entry))
        }
        let truncated = try Checkpoint.openStream(MemorySource(Array(bytes.dropLast())), name: "-")
        XCTAssertThrowsError(try truncated.withRandomAccess()) { XCTAssertEqual(($0 as? TensorFormatError)?.code, .truncated) }
        let trailing = try Checkpoint.openStream(MemorySource(bytes + [0]), name: "-")
        XCTAssertThrowsError(try trailing.withRandomAccess()) { XCTAssertEqual(($0 as? TensorFormatError)?.code, .trailingBytes) }
    }

    func testShardedCheckpointsReadAsOne() throws {
        let single = try Checkpoint.open(Fixtures.path("default"))
        XCTAssertEqual(single.format, .diffusersFolder)
        XCTAssertNotNil(single.configJSON)
        for sharded in [try Checkpoint.open(Fixtures.path("sharded/diffusers")),
                        try Checkpoint.open(Fixtures.path("sharded/hf/model.safetensors.index.json"))] {
            XCTAssertGreaterThan(sharded.files.count, 1)
            XCTAssertEqual(Set(sharded.entries.map(\.name)), Set(single.entries.map(\.name)))
            for entry in single.entries {
                XCTAssertEqual(try sharded.floats(named: entry.name), try single.floats(of: entry), entry.name)
            }
        }
    }

    func testIndexThatDisagreesWithItsShardsIsRefused() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dms-index-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = Fixtures.root.appendingPathComponent("sharded/hf")
        for name in try FileManager.default.contentsOfDirectory(atPath: source.path) {
            try FileManager.default.copyItem(at: source.appendingPathComponent(name), to: directory.appendingPathComponent(name))
        }
        let indexURL = directory.appendingPathComponent("model.safetensors.index.json")
        var text = try String(contentsOf: indexURL, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"conv_in.bias\": \"model-00001-of-00016.safetensors\"", with: "\"conv_in.bias\": \"model-00002-of-00016.safetensors\"")
        try text.write(to: indexURL, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Checkpoint.open(indexURL.path)) { error in
            let failure = error as? TensorFormatError
            XCTAssertEqual(failure?.code, .invalidIndex)
            XCTAssertEqual(failure?.tensor, "conv_in.bias")
        }
    }
}
