import Foundation
import XCTest
@testable import TensorFormats

/// Formats-level rules for hostile input (issue 15, section 5).
final class HostileInputTests: XCTestCase {
    func testOneLineEscapesControlCharactersInNamesAndMessages() {
        let error = TensorFormatError(.invalidArgument, "libhdf5 said\nsecond line", file: "a\u{1B}[31m.h5", tensor: "x\0y\\z")
        let line = error.oneLine
        XCTAssertFalse(line.contains("\n"))
        XCTAssertFalse(line.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F })
        XCTAssertEqual(line, #"a\x1b[31m.h5: invalid-argument: libhdf5 said\nsecond line (tensor 'x\0y\\z')"#)
    }

    func testNamesEqualAfterUnicodeNormalisationAreTwoTensors() throws {
        let json = #"{"\#u{E9}": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "e\#u{301}": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#
        let header = try Array(json.utf8).withUnsafeBytes { raw in try SafetensorsHeader.parse(json: raw, fileSize: nil) }
        XCTAssertEqual(header.tensors.count, 2)
        XCTAssertEqual(Set(header.tensors.map { ByteKey($0.name) }).count, 2)
    }

    func testSkippableFrameStartsAZstdStream() {
        XCTAssertTrue(Zstd.hasMagic([0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0]))
        XCTAssertTrue(Zstd.hasMagic([0x5F, 0x2A, 0x4D, 0x18]))
        XCTAssertFalse(Zstd.hasMagic([0x60, 0x2A, 0x4D, 0x18]))
    }

    func testMemoryBudgetProductsAreCheckedAndZeroWins() {
        XCTAssertNil(MemoryBudget.product([1 << 40, 1 << 40]))
        XCTAssertEqual(MemoryBudget.product([1 << 62, 0, 1 << 62]), 0)
        XCTAssertNil(MemoryBudget.product([-1, 2]))
        XCTAssertNil(MemoryBudget.sum([Int.max, 1]))
        XCTAssertThrowsError(try MemoryBudget.check(nil, for: "x", option: "--batch")) { error in
            XCTAssertEqual((error as? TensorFormatError)?.code, .tooLarge)
            XCTAssertTrue("\(error)".contains("--batch"))
        }
    }

    func testHDF5WriterRefusesANameWithANul() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("nul-\(UUID().uuidString).h5").path
        defer { unlink(path) }
        let writer = try HDF5Writer(path: path)
        let value: [Float] = [1]
        XCTAssertThrowsError(try value.withUnsafeBytes { try writer.write(name: "a\0b", dtype: .f32, shape: [1], bytes: $0) }) { error in
            XCTAssertEqual((error as? TensorFormatError)?.code, .unrepresentableName)
            XCTAssertEqual((error as? TensorFormatError)?.tensor, "a\0b")
        }
    }
}
