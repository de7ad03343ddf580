import Foundation
import Surgery
import TensorFormats
import XCTest

final class DifferTests: XCTestCase {
    private func write(_ tensors: [(String, [Int], [Float])], dtype: DType = .f32) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dms-diff-\(UUID().uuidString).safetensors").path
        let encoded: [(name: String, dtype: DType, shape: [Int], bytes: [UInt8])] = tensors.map { name, shape, values in
            var out = [UInt8](repeating: 0, count: dtype.byteCount(elements: values.count)!)
            values.withUnsafeBytes { src in out.withUnsafeMutableBytes { _ = ElementCodec.cast(from: .f32, src, to: dtype, $0, elements: values.count) } }
            return (name, dtype, shape, out)
        }
        try SafetensorsWriter.write(encoded, metadata: nil, to: path)
        return path
    }

    func testStatisticsFollowTheirDefinitions() throws {
        let a = try write([("t", [4], [1, 2, 0, .nan]), ("same", [1], [5]), ("onlyA", [1], [0])])
        let b = try write([("t", [4], [1, 4, 1, .nan]), ("same", [1], [5]), ("onlyB", [1], [0])])
        defer { try? FileManager.default.removeItem(atPath: a); try? FileManager.default.removeItem(atPath: b) }
        let report = try Differ.diff(try Checkpoint.open(a), try Checkpoint.open(b), options: DiffOptions(absoluteTolerance: 0.5, relativeTolerance: 0.2))
        XCTAssertEqual(report.onlyInA, ["onlyA"])
        XCTAssertEqual(report.onlyInB, ["onlyB"])
        XCTAssertTrue(report.compared.first { $0.name == "same" }!.identical)
        let v = try XCTUnwrap(report.compared.first { $0.name == "t" }?.values)
        XCTAssertEqual(v.maxAbsoluteError, 2)
        XCTAssertEqual(v.maxRelativeError, 1, "|0-1|/|1| = 1 beats |2-4|/4")
        XCTAssertEqual(v.overTolerance, 2, "|2-4| = 2 > 0.5 + 0.2·4 and |0-1| = 1 > 0.5 + 0.2·1; NaN against NaN is equal")
        XCTAssertEqual(v.relativeL2, (5.0 / 18.0).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(v.cosineSimilarity, 9 / (5.0.squareRoot() * 18.0.squareRoot()), accuracy: 1e-12)
        XCTAssertTrue(report.differs)
    }

    func testComparesAcrossDTypes() throws {
        let values: [Float] = (0..<1000).map { Float($0) * 0.37 - 100 }
        let a = try write([("w", [1000], values)], dtype: .bf16)
        let b = try write([("w", [1000], values)], dtype: .f32)
        defer { try? FileManager.default.removeItem(atPath: a); try? FileManager.default.removeItem(atPath: b) }
        let strict = try Differ.diff(try Checkpoint.open(a), try Checkpoint.open(b))
        XCTAssertTrue(strict.differs)
        let loose = try Differ.diff(try Checkpoint.open(a), try Checkpoint.open(b),
                                    options: DiffOptions(absoluteTolerance: 0, relativeTolerance: 1.0 / 256, ignoreDType: true))
        XCTAssertFalse(loose.differs)
        XCTAssertGreaterThan(loose.compared[0].values!.cosineSimilarity, 0.99999)
    }
}
