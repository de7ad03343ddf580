import Foundation
import XCTest
@testable import TensorFormats

final class HDF5WriterTests: XCTestCase {
    /// One tensor of every safetensors dtype, plus a scalar, an empty tensor and awkward names.
    static func allDTypeTensors() -> [(name: String, dtype: DType, shape: [Int], bytes: [UInt8])] {
        var tensors: [(name: String, dtype: DType, shape: [Int], bytes: [UInt8])] = []
        for (index, dtype) in DType.allCases.enumerated() {
            let shape = dtype.bitsPerElement == 6 ? [4, 6] : [3, 5, 4]
            let count = dtype.byteCount(elements: shape.reduce(1, *))!
            var bytes = HDF5TestSupport.bytes(count, seed: UInt64(index + 1))
            if dtype == .bool { bytes = bytes.map { $0 & 1 } }
            tensors.append(("model.\(dtype.rawValue.lowercased()).weight", dtype, shape, bytes))
        }
        tensors.append(("scalar", .f32, [], [0, 0, 0x80, 0x3F]))
        tensors.append(("empty", .f16, [2, 0], []))
        tensors.append(("odd/name with %.and.dots", .i32, [1], [1, 2, 3, 4]))
        tensors.append((".leading", .u8, [2], [7, 8]))
        return tensors
    }

    static let metadata = Metadata([("format", "pt"), ("nul", "a\u{0}b\u{0}"), ("dmsurgery.config", "{\"_class_name\": \"UNet2DModel\"}"), ("ünïcode", "✓")])

    private func write(_ tensors: [(name: String, dtype: DType, shape: [Int], bytes: [UInt8])], to path: String,
                       layout: HDF5WriteLayout = .dmsurgery, compression: OutputCompression? = nil) throws {
        let byName = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0.bytes) })
        try HDF5Output.write(to: path, layout: layout, compression: compression,
                             tensors: tensors.map { ($0.name, $0.dtype, $0.shape) }, metadata: Self.metadata) { info, sink in
            try byName[info.name]!.withUnsafeBytes { try sink($0) }
        }
    }

    func testEveryDTypeRoundTripsExactlyWithAndWithoutCompression() throws {
        let directory = try HDF5TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let tensors = Self.allDTypeTensors()
        for compression in [nil, OutputCompression(codec: .gzip, level: 6), OutputCompression(codec: .zstd, level: 5)] {
            let path = directory.appendingPathComponent("all-\(compression?.codec.rawValue ?? "plain").h5").path
            try write(tensors, to: path, compression: compression)
            let reader = try HDF5Reader(path: path)
            XCTAssertEqual(reader.layout, .dmsurgery)
            XCTAssertEqual(reader.tensors.map(\.name), tensors.map(\.name), "order is kept")
            XCTAssertEqual(reader.metadata.map(\.key), Self.metadata.keys)
            XCTAssertEqual(reader.metadata.map(\.value), Self.metadata.entries.map(\.value))
            for (tensor, want) in zip(reader.tensors, tensors) {
                XCTAssertEqual(tensor.dtype, want.dtype, want.name)
                XCTAssertEqual(tensor.shape, want.shape, want.name)
                XCTAssertEqual(try reader.read(tensor), want.bytes, want.name)
                if let compression, want.bytes.count > 0, !want.shape.isEmpty {
                    XCTAssertEqual(tensor.filters.last?.id, compression.codec == .gzip ? 1 : 32015, want.name)
                    XCTAssertEqual(tensor.filters.last?.parameters.first, UInt32(compression.level), want.name)
                }
            }
        }
    }

    /// safetensors -> HDF5 -> safetensors gives the bytes that safetensors -> safetensors gives, which
    /// for files written by the reference are the original bytes.
    func testSafetensorsToHDF5ToSafetensorsIsByteIdentical() throws {
        let directory = try HDF5TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let valid = HDF5TestSupport.repository.appendingPathComponent("fixtures/safetensors/valid")
        let files = try FileManager.default.contentsOfDirectory(atPath: valid.path).filter { $0.hasSuffix(".safetensors") }.sorted()
        XCTAssertTrue(files.contains("all_dtypes.safetensors"))
        for file in files {
            let original = try Checkpoint.open(valid.appendingPathComponent(file).path)
            for compression in [nil, OutputCompression(codec: .zstd)] {
                let h5 = directory.appendingPathComponent(file + ".h5").path
                try HDF5Output.write(original, to: h5, compression: compression)
                let back = try Checkpoint.open(h5, options: OpenOptions())
                let direct = directory.appendingPathComponent("direct-" + file).path
                let viaHDF5 = directory.appendingPathComponent("via-" + file).path
                try rewrite(original, to: direct)
                try rewrite(back, to: viaHDF5)
                XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: viaHDF5)), try Data(contentsOf: URL(fileURLWithPath: direct)), file)
                if file != "whitespace.safetensors" {
                    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: viaHDF5)),
                                   try Data(contentsOf: valid.appendingPathComponent(file)), "\(file) is the reference's bytes")
                }
            }
        }
    }

    private func rewrite(_ checkpoint: Checkpoint, to path: String) throws {
        let writer = SafetensorsWriter(tensors: checkpoint.entries.map { ($0.name, $0.dtype, $0.shape) }, metadata: checkpoint.metadata)
        let output = try OutputFile(path: path)
        try writer.write(to: output) { info, sink in try checkpoint.read(checkpoint.entry(named: info.name)!, sink) }
        try output.commit()
    }

    /// Live cross-check: h5py + hdf5plugin read dmsurgery's files (plain, gzip, zstd) bit for bit.
    func testH5pyAndHdf5pluginReadOurFilesWithIdenticalBits() throws {
        let directory = try HDF5TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let tensors = Self.allDTypeTensors()
        let script = """
        import sys, json, hashlib, h5py, hdf5plugin, numpy as np
        out = {}
        with h5py.File(sys.argv[1], "r") as f:
            out["__attrs__"] = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in f.attrs.items()}
            out["__order__"] = list(f.keys())
            for name, ds in f.items():
                data = np.ascontiguousarray(ds[()])
                filters = [int(ds.id.get_create_plist().get_filter(i)[0]) for i in range(ds.id.get_create_plist().get_nfilters())]
                attr = ds.attrs.get("dtype")
                out[name] = {"sha256": hashlib.sha256(data.tobytes()).hexdigest(), "numpy": data.dtype.str,
                             "shape": list(ds.shape), "dtype_attr": attr.decode() if isinstance(attr, bytes) else attr,
                             "filters": filters}
        print(json.dumps(out))
        """
        let numpyNames: [DType: String] = [.bool: "|b1", .u8: "|u1", .i8: "|i1", .i16: "<i2", .u16: "<u2", .f16: "<f2",
                                           .i32: "<i4", .u32: "<u4", .f32: "<f4", .c64: "<c8", .f64: "<f8", .i64: "<i8", .u64: "<u8"]
        for compression in [nil, OutputCompression(codec: .gzip), OutputCompression(codec: .zstd, level: 7)] {
            let path = directory.appendingPathComponent("cross-\(compression?.codec.rawValue ?? "plain").h5").path
            try write(tensors, to: path, compression: compression)
            let report = try JSONSerialization.jsonObject(with: Data(try HDF5TestSupport.python(script, [path]).utf8)) as! [String: Any]
            XCTAssertEqual(report["__order__"] as? [String], tensors.map { HDF5Names.flatLinkName(tensor: $0.name)! }, "h5py sees creation order")
            let attributes = report["__attrs__"] as! [String: String]
            XCTAssertEqual(attributes["format"], "pt")
            XCTAssertEqual(attributes["ünïcode"], "✓")
            for tensor in tensors {
                let seen = report[HDF5Names.flatLinkName(tensor: tensor.name)!] as! [String: Any]
                XCTAssertEqual(seen["sha256"] as? String, SHA256Digest.hex(tensor.bytes), tensor.name)
                if let numpy = numpyNames[tensor.dtype] {
                    XCTAssertEqual(seen["numpy"] as? String, numpy, tensor.name)
                    XCTAssertEqual(seen["shape"] as? [Int], tensor.shape, tensor.name)
                } else {
                    XCTAssertEqual(seen["dtype_attr"] as? String, HDF5TypeMapping.attributeNames[tensor.dtype], tensor.name)
                }
                if let compression, !tensor.bytes.isEmpty, !tensor.shape.isEmpty {
                    XCTAssertEqual((seen["filters"] as? [Int])?.last, compression.codec == .gzip ? 1 : 32015, tensor.name)
                }
            }
        }
    }

    /// `--hdf5-layout keras3` output loads into the Keras model the fixture came from, variables equal.
    func testKeras3LayoutLoadsIntoKeras() throws {
        let directory = try HDF5TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = try Checkpoint.openHDF5(HDF5TestSupport.fixture("keras3.weights.h5"), name: "keras3")
        let path = directory.appendingPathComponent("ours.weights.h5").path
        try HDF5Output.write(source, to: path, layout: .keras3)
        XCTAssertEqual(try HDF5Reader(path: path).layout, .keras3)
        let script = """
        import sys, numpy as np
        sys.path.insert(0, sys.argv[1])
        import keras
        from generate import small_model
        ours, reference = small_model(keras), small_model(keras)
        ours.load_weights(sys.argv[2])
        reference.load_weights(sys.argv[3])
        assert len(ours.weights) == len(reference.weights) > 0
        for a, b in zip(ours.weights, reference.weights):
            assert np.array_equal(np.asarray(a.numpy()), np.asarray(b.numpy())), a.path
        print(len(ours.weights))
        """
        let output = try HDF5TestSupport.python(script, [HDF5TestSupport.fixtures.path, path, HDF5TestSupport.fixture("keras3.weights.h5")],
                                                environment: ["KERAS_BACKEND": "torch"])
        XCTAssertEqual(output.trimmingCharacters(in: .whitespacesAndNewlines), "13")
    }

    func testCompressionOptionParsing() {
        XCTAssertEqual(OutputCompression(parsing: "gzip"), OutputCompression(codec: .gzip, level: 4))
        XCTAssertEqual(OutputCompression(parsing: "zstd:19"), OutputCompression(codec: .zstd, level: 19))
        XCTAssertNil(OutputCompression(parsing: "gzip:10"))
        XCTAssertNil(OutputCompression(parsing: "zstd:0"))
        XCTAssertNil(OutputCompression(parsing: "lz4"))
        XCTAssertNil(OutputCompression(parsing: "zstd:x"))
    }

    func testChunksStayUnderOneMebibyte() {
        XCTAssertEqual(OutputCompression.chunkShape([320, 320, 3, 3], elementSize: 4), [80, 320, 3, 3])
        XCTAssertEqual(OutputCompression.chunkShape([7], elementSize: 2), [7])
        XCTAssertEqual(OutputCompression.chunkShape([1, 1 << 20], elementSize: 4), [1, 1 << 18])
    }

    func testWriterRefusesReservedMetadataAndEmptyNames() throws {
        let directory = try HDF5TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("x.h5").path
        XCTAssertThrowsError(try HDF5Writer(path: path, metadata: [(HDF5Reader.layoutAttribute, "x")]))
        let writer = try HDF5Writer(path: path)
        XCTAssertThrowsError(try [UInt8](repeating: 0, count: 4).withUnsafeBytes { try writer.write(name: "", dtype: .f32, shape: [1], bytes: $0) })
        XCTAssertThrowsError(try [UInt8](repeating: 0, count: 3).withUnsafeBytes { try writer.write(name: "x", dtype: .f32, shape: [1], bytes: $0) })
        try writer.close()
    }

    func testFailedWriteLeavesNoFile() throws {
        let directory = try HDF5TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("partial.h5").path
        XCTAssertThrowsError(try HDF5Output.write(to: path, tensors: [("a", .f32, [2])], metadata: nil) { _, sink in
            try [UInt8](repeating: 1, count: 4).withUnsafeBytes { try sink($0) }
        })
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
    }
}
