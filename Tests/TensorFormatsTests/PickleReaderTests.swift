import Foundation
import TensorFormats
import XCTest

/// The PyTorch reader against torch itself: fixtures/pickle/generate.py saved each file with torch.save
/// and wrote what `torch.load(weights_only=True)` returns (flattened by the documented rule, made
/// contiguous) as NAME.expected.safetensors.
final class PickleReaderTests: XCTestCase {
    static let goldens = ["zip.pt", "legacy.pt", "sd.ckpt", "model_ema.pth", "module.bin", "tensor.pt", "big_endian.pt"]

    func testTorchFilesReadToTheValuesOfTorchLoad() throws {
        for name in Self.goldens {
            let checkpoint = try Checkpoint.open(Fixtures.path("pickle/" + name))
            XCTAssertEqual(checkpoint.format, .pytorch, name)
            let stem = String(name[..<name.lastIndex(of: ".")!])
            let expected = try Checkpoint.open(Fixtures.path("pickle/\(stem).expected.safetensors"))
            XCTAssertEqual(Set(checkpoint.entries.map(\.name)), Set(expected.entries.map(\.name)), name)
            for reference in expected.entries {
                let entry = try XCTUnwrap(checkpoint.entry(named: reference.name), "\(name): \(reference.name)")
                XCTAssertEqual(entry.dtype, reference.dtype, "\(name): \(reference.name)")
                XCTAssertEqual(entry.shape, reference.shape, "\(name): \(reference.name)")
                XCTAssertEqual(try checkpoint.bytes(of: entry), try expected.bytes(of: reference), "\(name): \(reference.name)")
            }
        }
    }

    func testChunkedAndRangeReadsOfStridedViewsAgreeWithWholeReads() throws {
        let checkpoint = try Checkpoint.open(Fixtures.path("pickle/zip.pt"))
        for name in ["transposed", "sliced", "expanded", "shared_c", "f32"] {
            let entry = try XCTUnwrap(checkpoint.entry(named: name))
            let whole = try checkpoint.bytes(of: entry)
            var pieces: [UInt8] = []
            try checkpoint.read(entry, chunkBytes: 8) { pieces.append(contentsOf: $0) }
            XCTAssertEqual(pieces, whole, name)
            var ranged: [UInt8] = []
            try checkpoint.read(entry, range: 3..<(whole.count - 1)) { ranged.append(contentsOf: $0) }
            XCTAssertEqual(ranged, Array(whole[3..<(whole.count - 1)]), name)
        }
    }

    func testStateDictLayoutsUnwrapAsDocumented() throws {
        let sd = try Checkpoint.open(Fixtures.path("pickle/sd.ckpt"))
        XCTAssertNotNil(sd.entry(named: "model.diffusion_model.input_blocks.0.0.weight"))
        XCTAssertNotNil(sd.entry(named: "model_ema.decay"))
        XCTAssertFalse(sd.entries.contains { $0.name.hasPrefix("state_dict") || $0.name.contains("epoch") })
        let ema = try Checkpoint.open(Fixtures.path("pickle/model_ema.pth"))
        XCTAssertEqual(Set(ema.entries.map(\.name)), ["conv.weight", "conv.bias", "model_ema.conv.weight", "model_ema.conv.bias"])
        XCTAssertEqual(try Checkpoint.open(Fixtures.path("pickle/tensor.pt")).entries.map(\.name), ["tensor"])
    }

    func testPayloadsAreRefusedNamingTheGlobalAndNeverRun() throws {
        let marker = "/tmp/dmsurgery-pickle-pwned"
        try? FileManager.default.removeItem(atPath: marker)
        let expected = ["os_system": "posix.system", "eval": "builtins.eval", "subprocess": "subprocess.Popen"]
        for (stem, global) in expected {
            for suffix in [".pt", ".legacy.pt", ".p2.pkl", ".p4.pkl"] {
                let path = Fixtures.path("pickle/hostile/" + stem + suffix)
                XCTAssertThrowsError(try Checkpoint.open(path), path) { error in
                    let error = error as? TensorFormatError
                    XCTAssertEqual(error?.code, .pickleGlobalRefused, path)
                    XCTAssertTrue(error?.message.contains(global) == true, "\(path): \(String(describing: error))")
                }
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker))
    }

    // MARK: Hostile pickles, built opcode by opcode

    private func load(_ bytes: [UInt8]) throws -> PickleValue {
        var unpickler = TorchUnpickler()
        return try bytes.withUnsafeBytes { raw in try unpickler.load(raw).value }
    }

    private func assertRefused(_ bytes: [UInt8], _ code: ErrorCode, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try load(bytes), file: file, line: line) { error in
            let error = error as? TensorFormatError
            XCTAssertEqual(error?.code, code, String(describing: error), file: file, line: line)
            XCTAssertTrue(error?.message.contains(fragment) == true, String(describing: error), file: file, line: line)
        }
    }

    func testMalformedPicklesAreErrorsNotTraps() {
        assertRefused([0x80, 0x02, 0x68, 0x07, 0x2E], .pickleInvalid, "memo index 7") // BINGET of nothing
        assertRefused([0x80, 0x02, 0x2E], .pickleInvalid, "underflow") // STOP on an empty stack
        assertRefused([0x80, 0x02, 0x28, 0x61, 0x2E], .pickleInvalid, "underflow") // APPEND across a MARK
        assertRefused([0x80, 0x02, 0x58, 0xFF, 0xFF, 0xFF, 0x7F, 0x41], .pickleInvalid, "runs past the end") // huge BINUNICODE
        assertRefused([0x80, 0x02, 0x8B, 0x00, 0x00, 0x00, 0x80], .pickleInvalid, "runs past the end") // huge LONG4
        assertRefused([0x80, 0x02, 0x4B], .pickleInvalid, "pickle ends") // BININT1 cut short
        assertRefused([0x80, 0x02] + [UInt8](repeating: 0x28, count: 5000), .pickleTooDeep, "MARK")
        assertRefused([0x80, 0x02, 0x5D, 0x75, 0x2E], .pickleInvalid, "MARK") // SETITEMS without MARK
        assertRefused([0x80, 0x02, 0x5D, 0x4E, 0x4E, 0x73, 0x2E], .pickleInvalid, "needs a dict") // SETITEM on a list
        assertRefused([0x80, 0x02, 0x82, 0x01], .pickleUnsupportedOpcode, "EXT1")
        assertRefused([0x80, 0x02, 0xFF], .pickleUnsupportedOpcode, "0xff")
        assertRefused(Array("(S'touch x'\nios\nsystem\n.".utf8), .pickleGlobalRefused, "os.system") // INST, protocol 0
        assertRefused(Array("c__builtin__\neval\n(Vx\ntR.".utf8), .pickleGlobalRefused, "builtins.eval")
    }

    func testSelfContainingListsDoNotRecurseForever() throws {
        // l = []; l.append(l); {"a": l}: BINPUT 0, BINGET 0, APPEND.
        let bytes: [UInt8] = [0x80, 0x02, 0x7D, 0x58, 1, 0, 0, 0, 0x61, 0x5D, 0x71, 0x00, 0x68, 0x00, 0x61, 0x73, 0x2E]
        let value = try load(bytes)
        guard case .object = value else { return XCTFail("not a dict: \(value)") }
    }

    /// A zip-less check of views against storages: a `_rebuild_tensor_v2` call whose view reaches past
    /// its 4-element storage.
    func testViewsReachingPastTheirStorageAreRefused() {
        func string(_ s: String) -> [UInt8] { [0x58] + withUnsafeBytes(of: UInt32(s.utf8.count).littleEndian, Array.init) + Array(s.utf8) }
        var bytes: [UInt8] = [0x80, 0x02]
        bytes += Array("ctorch._utils\n_rebuild_tensor_v2\n".utf8)
        bytes += [0x28, 0x28] + string("storage") + Array("ctorch\nFloatStorage\n".utf8) + string("0") + string("cpu") + [0x4B, 4, 0x74, 0x51]
        bytes += [0x4B, 0, 0x4B, 10, 0x85, 0x4B, 1, 0x85, 0x89, 0x4E, 0x74, 0x52, 0x2E]
        assertRefused(bytes, .torchInvalid, "reaches element 9 of a storage of 4")
    }

    /// A legacy-format torch file around `object`, a pickle body (no PROTO, no STOP) that may use
    /// `tensor` (the bytes of a 2-element float tensor over storage "0") any number of times.
    private func legacyFile(_ object: [UInt8]) -> [UInt8] {
        func string(_ s: String) -> [UInt8] { [0x58] + withUnsafeBytes(of: UInt32(s.utf8.count).littleEndian, Array.init) + Array(s.utf8) }
        var bytes: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E]
        bytes += [0x80, 0x02, 0x4D, 0xE9, 0x03, 0x2E, 0x80, 0x02, 0x7D, 0x2E]
        bytes += [0x80, 0x02] + object + [0x2E]
        bytes += [0x80, 0x02, 0x5D] + string("0") + [0x61, 0x2E]
        bytes += withUnsafeBytes(of: Int64(2).littleEndian, Array.init) + withUnsafeBytes(of: Float(1.5), Array.init) + withUnsafeBytes(of: Float(-2), Array.init)
        return bytes
    }

    private var tensorOpcodes: [UInt8] {
        func string(_ s: String) -> [UInt8] { [0x58] + withUnsafeBytes(of: UInt32(s.utf8.count).littleEndian, Array.init) + Array(s.utf8) }
        var bytes = Array("ctorch._utils\n_rebuild_tensor_v2\n".utf8)
        bytes += [0x28, 0x28] + string("storage") + Array("ctorch\nFloatStorage\n".utf8) + string("0") + string("cpu") + [0x4B, 2, 0x4E, 0x74, 0x51]
        bytes += [0x4B, 0, 0x4B, 2, 0x85, 0x4B, 1, 0x85, 0x89, 0x4E, 0x74, 0x52]
        return bytes
    }

    func testRecursiveContainersNameEachTensorOnce() throws {
        // {"a": l} where l = [l, tensor]: EMPTY_DICT "a" EMPTY_LIST BINPUT 0 MARK BINGET 0 TENSOR APPENDS SETITEM
        let object: [UInt8] = [0x7D, 0x58, 1, 0, 0, 0, 0x61, 0x5D, 0x71, 0] + [0x28, 0x68, 0] + tensorOpcodes + [0x65, 0x73]
        let checkpoint = try Checkpoint.open(try temporaryFile(legacyFile(object)))
        XCTAssertEqual(checkpoint.entries.map(\.name), ["a.1"])
        XCTAssertEqual(try checkpoint.floats(named: "a.1"), [1.5, -2])
    }

    func testDeeplyNestedContainersAreRefused() throws {
        // 100 one-element lists around a tensor: TENSOR then TUPLE1 x 100.
        let object = tensorOpcodes + [UInt8](repeating: 0x85, count: 100)
        assertOpenFails(try temporaryFile(legacyFile(object)), .pickleTooDeep, "deeper than 64")
        // 60 levels are fine.
        let shallow = tensorOpcodes + [UInt8](repeating: 0x85, count: 60)
        XCTAssertEqual(try Checkpoint.open(try temporaryFile(legacyFile(shallow))).entries.first?.name.split(separator: ".").count, 60)
    }

    func testStorageCountsPastTheFileAreRefused() throws {
        var bytes = legacyFile(tensorOpcodes)
        bytes.removeLast(1)
        assertOpenFails(try temporaryFile(bytes), .truncated, "runs past the end of the file")
    }

    // MARK: Containers and sniffing

    private func temporaryFile(_ bytes: [UInt8], suffix: String = ".ckpt") throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pickle-\(UUID().uuidString)\(suffix)").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    private func assertOpenFails(_ path: String, _ code: ErrorCode, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Checkpoint.open(path), file: file, line: line) { error in
            let error = error as? TensorFormatError
            XCTAssertEqual(error?.code, code, String(describing: error), file: file, line: line)
            XCTAssertTrue(error?.message.contains(fragment) == true, String(describing: error), file: file, line: line)
            XCTAssertEqual(error?.file, path, file: file, line: line)
        }
    }

    func testTruncatedAndDamagedTorchFilesAreErrors() throws {
        let zip = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("pickle/zip.pt"))))
        for cut in [30, zip.count / 2, zip.count - 1] {
            XCTAssertThrowsError(try Checkpoint.open(try temporaryFile(Array(zip[0..<cut])))) { error in
                XCTAssertEqual((error as? TensorFormatError)?.code, .zipInvalid, "cut at \(cut): \(error)")
            }
        }
        let legacy = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("pickle/legacy.pt"))))
        for cut in [20, legacy.count - 3] {
            XCTAssertThrowsError(try Checkpoint.open(try temporaryFile(Array(legacy[0..<cut])))) { error in
                let code = (error as? TensorFormatError)?.code
                XCTAssertTrue(code == .truncated || code == .pickleInvalid, "cut at \(cut): \(error)")
            }
        }
        assertOpenFails(try temporaryFile(legacy + [0]), .trailingBytes, "follow the last storage")
        assertOpenFails(Fixtures.path("pickle/hostile/compressed.pt"), .zipCompressed, "is compressed (method 8)")
    }

    func testOtherFormatsAreNamedInsteadOfMisparsed() throws {
        // A file named .safetensors that holds GGUF is read by the GGUF reader, whatever its name.
        XCTAssertEqual(try Checkpoint.open(try temporaryFile(Array("GGUF".utf8) + [3, 0, 0, 0] + [UInt8](repeating: 0, count: 32), suffix: ".safetensors")).format, .gguf)
        assertOpenFails(try temporaryFile(Array("{\"weight_map\": {}}\n".utf8), suffix: ".safetensors"), .wrongFormat, "text file")
        assertOpenFails(try temporaryFile([0x93] + Array("NUMPY".utf8) + [1, 0, 0x76, 0], suffix: ".safetensors"), .wrongFormat, "NumPy")
        // An empty zip: only the end record.
        assertOpenFails(try temporaryFile([0x50, 0x4B, 0x05, 0x06] + [UInt8](repeating: 0, count: 18)), .wrongFormat, "without ARCHIVE/data.pkl")
        assertOpenFails(try temporaryFile([0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4, 5], suffix: ".ckpt"), .wrongFormat, "neither a zip nor a pickle (first bytes de ad be ef)")
        // A bare pickle that is not torch's: read safely, then named.
        assertOpenFails(try temporaryFile([0x80, 0x02, 0x7D, 0x2E], suffix: ".pkl"), .wrongFormat, "Python pickle")
    }

    func testAPickleOnAPipeIsSpooledAndRead() throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("pickle/zip.pt"))))
        let checkpoint = try Checkpoint.openSniffing(MemorySource(bytes))
        XCTAssertEqual(checkpoint.format, .pytorch)
        let entry = try XCTUnwrap(checkpoint.entry(named: "transposed"))
        XCTAssertEqual(entry.shape, [8, 6])
    }
}
