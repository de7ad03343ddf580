import Foundation
import XCTest
@testable import TensorFormats

final class HDF5ReaderTests: XCTestCase {
    /// Every valid fixture reads with h5py's names (in dmsurgery's mapping), dtypes, shapes and bytes.
    func testEveryFixtureReadsAsH5pyReadsIt() throws {
        let expected = try HDF5TestSupport.expected()
        var checked = 0
        for (file, value) in expected.sorted(by: { $0.key < $1.key }) {
            let entry = value as! [String: Any]
            guard entry["error"] == nil else { continue }
            let reader = try HDF5Reader(path: HDF5TestSupport.fixture(file))
            XCTAssertEqual(reader.layout.rawValue, (entry["layout"] as! String).replacingOccurrences(of: "-sharded", with: ""), file)
            let tensors = entry["tensors"] as! [[String: Any]]
            XCTAssertEqual(reader.tensors.map(\.name), tensors.map { $0["name"] as! String }, file)
            for (tensor, want) in zip(reader.tensors, tensors) {
                XCTAssertEqual(tensor.dtype.rawValue, want["dtype"] as? String, "\(file) \(tensor.name)")
                XCTAssertEqual(tensor.shape, want["shape"] as? [Int], "\(file) \(tensor.name)")
                XCTAssertEqual(SHA256Digest.hex(try reader.read(tensor)), want["sha256"] as? String, "\(file) \(tensor.name)")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 80)
    }

    func testBrokenAndUnsafeFixturesFailWithTheirRule() throws {
        for (file, value) in try HDF5TestSupport.expected() {
            guard let rule = (value as! [String: Any])["error"] as? String else { continue }
            XCTAssertThrowsError(try HDF5Reader(path: HDF5TestSupport.fixture(file)), file) { error in
                guard let error = error as? TensorFormatError else { return XCTFail("\(file): \(error)") }
                XCTAssertEqual(error.code.rawValue, rule, "\(file): \(error)")
                XCTAssertEqual(error.file, HDF5TestSupport.fixture(file))
                XCTAssertFalse(error.description.contains("\n"), "one line: \(error)")
            }
        }
    }

    func testHDF5ErrorStackBecomesOneLineWithTheCause() {
        XCTAssertThrowsError(try HDF5Reader(path: HDF5TestSupport.fixture("broken_not_hdf5.h5"))) { error in
            XCTAssertTrue("\(error)".contains("file signature not found"), "\(error)")
        }
    }

    func testAllowUnsafeFollowsSoftLinksAndSkipsDanglingOnes() throws {
        let reader = try HDF5Reader(path: HDF5TestSupport.fixture("unsafe_soft_link.h5"), options: HDF5ReadOptions(allowUnsafe: true))
        XCTAssertEqual(reader.tensors.map(\.name), ["alias", "ok"])
        XCTAssertEqual(reader.skipped.map(\.path), ["/dangling"])
    }

    func testAllowUnsafeOpensTheShapeBombWithoutReadingIt() throws {
        let reader = try HDF5Reader(path: HDF5TestSupport.fixture("unsafe_huge.h5"), options: HDF5ReadOptions(allowUnsafe: true))
        XCTAssertEqual(reader.tensors.first?.shape, [1 << 31])
        XCTAssertEqual(reader.tensors.first?.storedBytes, 0)
    }

    func testForcedGenericLayoutNamesKerasDatasetsByPath() throws {
        let reader = try HDF5Reader(path: HDF5TestSupport.fixture("keras2_model.h5"), options: HDF5ReadOptions(layout: .generic))
        XCTAssertEqual(reader.layout, .generic)
        XCTAssertTrue(reader.tensors.contains { $0.name == "model_weights.conv.conv.kernel:0" })
    }

    func testKeras2MetadataComesFromRootAttributes() throws {
        let reader = try HDF5Reader(path: HDF5TestSupport.fixture("keras2_model.h5"))
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: reader.metadata.map { ($0.key, $0.value) })["keras_version"], "2.15.0")
    }

    func testInspectDetailsShowChunksAndFilters() throws {
        let checkpoint = try Checkpoint.openHDF5(HDF5TestSupport.fixture("generic.h5"), name: "generic.h5")
        XCTAssertEqual(checkpoint.format, .hdf5)
        let details = Dictionary(checkpoint.details, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(details["hdf5 layout"], "generic")
        XCTAssertEqual(details["hdf5 dataset /encoder/weight"], "IEEE float32 LE, chunked [4, 8], shuffle+deflate(6), \(try storedBytes("generic.h5", "encoder.weight")) bytes stored")
        XCTAssertTrue(details["hdf5 dataset /encoder/blocks/0/w"]!.contains("zstd(5)"), details["hdf5 dataset /encoder/blocks/0/w"]!)
        XCTAssertEqual(details["hdf5 skipped /notes"], "strings")
    }

    private func storedBytes(_ file: String, _ name: String) throws -> Int {
        try HDF5Reader(path: HDF5TestSupport.fixture(file)).tensor(named: name)!.storedBytes
    }

    func testShardedKeras3ReadsEveryShardInIndexOrder() throws {
        let checkpoint = try Checkpoint.openHDF5(HDF5TestSupport.fixture("keras3_sharded.weights.json"), name: "sharded")
        XCTAssertEqual(checkpoint.files.count, 3)
        let single = try Checkpoint.openHDF5(HDF5TestSupport.fixture("keras3.weights.h5"), name: "single")
        XCTAssertEqual(Set(checkpoint.entries.map(\.name)), Set(single.entries.map(\.name)))
        for entry in checkpoint.entries {
            XCTAssertEqual(try checkpoint.bytes(of: entry), try single.bytes(of: single.entry(named: entry.name)!), entry.name)
        }
    }

    /// A pipe is spooled to an unlinked temporary file and reads like the file itself.
    func testPipeInputIsSpooledAndReadsLikeTheFile() throws {
        let path = HDF5TestSupport.fixture("keras3_bf16.weights.h5")
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let source = FileDescriptorSource(fd: HDF5TestSupport.pipeFeeding(data), name: "-", ownsDescriptor: true)
        let piped = try Checkpoint.openHDF5(source)
        let direct = try Checkpoint.openHDF5(path, name: path)
        XCTAssertEqual(piped.name, "-")
        XCTAssertEqual(piped.entries.map(\.name), direct.entries.map(\.name))
        for entry in piped.entries {
            XCTAssertEqual(try piped.bytes(of: entry), try direct.bytes(of: entry), entry.name)
        }
    }

    func testNameMappingIsReversible() {
        let components = ["decoder.v2", "100%", "w"]
        let name = HDF5Names.dottedName(components: components)
        XCTAssertEqual(name, "decoder%2Ev2.100%25.w")
        XCTAssertEqual(HDF5Names.components(dottedName: name), components)
        XCTAssertNil(HDF5Names.components(dottedName: "a..b"))
        for tensor in ["a/b", ".hidden", "..", "50%.x", "plain.name", "ü.名"] {
            let link = HDF5Names.flatLinkName(tensor: tensor)!
            XCTAssertFalse(link.contains("/") || link.hasPrefix("."), link)
            XCTAssertEqual(HDF5Names.tensorName(flatLinkName: link), tensor)
        }
        XCTAssertNil(HDF5Names.flatLinkName(tensor: ""))
    }

    func testNumericSiblingsSortNumerically() {
        XCTAssertEqual(["10", "b", "2", "a", "0"].sorted(by: HDF5Names.siblingOrder), ["0", "2", "10", "a", "b"])
    }
}
