import Foundation
import TensorFormats
import XCTest

/// The ONNX reader on fixtures/onnx (written by fixtures/onnx/generate.py with onnx, onnxruntime and
/// torch): tensors mapped back to the exported names and layouts, quantized weights dequantized, a
/// foreign torch.onnx export, pipeline folders, and the hostile files' rules.
final class ONNXReaderTests: XCTestCase {
    private func floats(_ checkpoint: Checkpoint) throws -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for entry in checkpoint.entries { out[entry.name] = try checkpoint.floats(of: entry) }
        return out
    }

    private func temporaryFolder() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dms-onnx-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testModelReadsAsTheTensorsItWasExportedFrom() throws {
        let expected = try Checkpoint.open(Fixtures.path("onnx/tiny-expected.safetensors"))
        let want = try floats(expected)
        for file in ["onnx/tiny.onnx", "onnx/tiny-external.onnx"] {
            let model = try Checkpoint.open(Fixtures.path(file))
            XCTAssertEqual(model.format, .onnx, file)
            XCTAssertEqual(Set(model.entries.map(\.name)), Set(expected.entries.map(\.name)), "\(file): /const/ initializers are not tensors")
            for entry in expected.entries {
                XCTAssertEqual(model.entry(named: entry.name)?.shape, entry.shape, "\(file) \(entry.name)")
            }
            let got = try floats(model)
            for (name, values) in want {
                XCTAssertEqual(got[name]?.map(\.bitPattern), values.map(\.bitPattern), "\(file) \(name)")
            }
            XCTAssertEqual(model.configJSON, #"{"_class_name": "Tiny", "width": 40}"#, file)
            XCTAssertEqual(model.onnxGraph?.inputs.map(\.name), ["x", "img", "h"], file)
            XCTAssertEqual(model.onnxGraph?.inputs.first?.shape, ["batch", "40"], file)
            XCTAssertEqual(model.onnxGraph?.operators.first?.op, "MatMul", file)
        }
        XCTAssertEqual(try Checkpoint.open(Fixtures.path("onnx/tiny-external.onnx")).onnxGraph?.externalFiles, ["tiny-external.data"])
    }

    func testTransposedAndChunkedReadsAgree() throws {
        let model = try Checkpoint.open(Fixtures.path("onnx/tiny-int4.onnx"))
        for name in ["lin.weight", "conv.weight", "lin.bias"] {
            let entry = try XCTUnwrap(model.entry(named: name))
            let whole = try model.bytes(of: entry)
            var chunks: [UInt8] = []
            try model.read(entry, chunkBytes: 64) { chunks.append(contentsOf: $0) }
            XCTAssertEqual(chunks, whole, name)
            var piece: [UInt8] = []
            try model.read(entry, range: 8..<20) { piece.append(contentsOf: $0) }
            XCTAssertEqual(piece, Array(whole[8..<20]), name)
        }
    }

    func testQuantizedWeightsDequantizeWithinTheQuantizationError() throws {
        let want = try floats(try Checkpoint.open(Fixtures.path("onnx/tiny-expected.safetensors")))
        let model = try Checkpoint.open(Fixtures.path("onnx/tiny-int4.onnx"))
        XCTAssertEqual(model.entry(named: "lin.weight")?.shape, [6, 40], "MatMulNBits reads as [N, K] under B's name without _Q4")
        XCTAssertEqual(model.entry(named: "conv.weight")?.shape, [4, 40, 3, 3])
        XCTAssertNil(model.entry(named: "lin.weight_Q4"))
        let got = try floats(model)
        XCTAssertEqual(Set(got.keys), Set(want.keys))
        for (name, values) in want {
            let read = try XCTUnwrap(got[name], name)
            if ["lin.weight", "out.weight", "conv.weight"].contains(name) {
                // 4-bit RTN: within one step, (max - min) / 15 of the whole tensor bounds every block's step.
                let step = ((values.max() ?? 0) - min(values.min() ?? 0, 0)) / 15
                let worst = zip(read, values).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, step, name)
                XCTAssertGreaterThan(worst, 0, "\(name) is quantized")
            } else {
                XCTAssertEqual(read.map(\.bitPattern), values.map(\.bitPattern), name)
            }
        }
    }

    func testForeignTorchExportOpensAndEveryTensorReads() throws {
        let model = try Checkpoint.open(Fixtures.path("onnx/unet-torch.onnx"))
        XCTAssertEqual(model.entries.count, 154)
        XCTAssertNotNil(model.entry(named: "conv_in.weight"))
        for entry in model.entries {
            XCTAssertTrue(try model.floats(of: entry).allSatisfy(\.isFinite), entry.name)
        }
        XCTAssertEqual(model.onnxGraph?.outputs.map(\.name), ["out_sample"])
        XCTAssertEqual(model.onnxGraph?.opsets.first?.version, 17)
    }

    func testCanonicallyEquivalentNamesAreTwoTensors() throws {
        let model = try Checkpoint.open(Fixtures.path("onnx/unicode-names.onnx"))
        XCTAssertEqual(model.entries.map { Array($0.name.utf8) }, [Array("caf\u{e9}".utf8), Array("cafe\u{301}".utf8)])
        XCTAssertEqual(try model.entries.map { try model.floats(of: $0) }, [[1], [2]])
    }

    func testHostileFilesFailWithTheirRuleAndFile() throws {
        let expected = try Fixtures.json("onnx/hostile/expected.json")
        XCTAssertGreaterThan(expected.count, 20)
        for (file, rule) in expected {
            let path = Fixtures.path("onnx/hostile/" + file)
            XCTAssertThrowsError(try Checkpoint.open(path), file) { error in
                guard let error = error as? TensorFormatError else { return XCTFail("\(file): \(error)") }
                XCTAssertEqual(error.code.rawValue, rule as? String, "\(file): \(error.oneLine)")
                XCTAssertEqual(error.file, path, file)
                XCTAssertFalse(error.oneLine.contains("\n"), file)
            }
        }
    }

    func testExternalDataThroughASymlinkOutOfTheFolderIsRefused() throws {
        let outside = try temporaryFolder(), folder = try temporaryFolder()
        try Data(count: 16).write(to: URL(fileURLWithPath: outside + "/data.bin"))
        try FileManager.default.copyItem(atPath: Fixtures.path("onnx/hostile/external_past_end.onnx"), toPath: folder + "/model.onnx")
        try FileManager.default.createSymbolicLink(atPath: folder + "/data.bin", withDestinationPath: outside + "/data.bin")
        XCTAssertThrowsError(try Checkpoint.open(folder + "/model.onnx")) {
            XCTAssertEqual(($0 as? TensorFormatError)?.code, .onnxExternalPath)
        }
    }

    func testUnsuffixedModelIsRecognisedByItsFirstFields() throws {
        let folder = try temporaryFolder()
        try FileManager.default.copyItem(atPath: Fixtures.path("onnx/tiny.onnx"), toPath: folder + "/weights")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: folder + "/weights"))
        XCTAssertEqual(SniffedFormat(prefix: bytes), .onnx)
        XCTAssertEqual(try Checkpoint.open(folder + "/weights").format, .onnx)
        XCTAssertNotEqual(SniffedFormat(prefix: [0x08, 0x00, 0x12]), .onnx, "ir_version 0")
        XCTAssertNotEqual(SniffedFormat(prefix: [0x08, 0x07, 0x08]), .onnx, "field 1 twice")
    }

    func testPipelineFolderOfONNXComponents() throws {
        let root = try temporaryFolder()
        let index = #"{"_class_name": "OnnxStableDiffusionPipeline", "unet": ["diffusers", "OnnxRuntimeModel"], "#
            + #""vae_decoder": ["diffusers", "OnnxRuntimeModel"], "safety_checker": [null, null]}"#
        try Data(index.utf8).write(to: URL(fileURLWithPath: root + "/model_index.json"))
        for component in ["unet", "vae_decoder"] {
            try FileManager.default.createDirectory(atPath: root + "/" + component, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: Fixtures.path("onnx/tiny-int4.onnx"), toPath: root + "/\(component)/model.onnx")
        }
        let unet = try Checkpoint.open(root)
        XCTAssertEqual(unet.format, .onnx)
        XCTAssertEqual(unet.name, root + "/unet/model.onnx")
        let pipeline = try Checkpoint.openPipeline(root)
        XCTAssertEqual(pipeline.entries.count, 2 * unet.entries.count)
        XCTAssertEqual(try pipeline.floats(named: "vae_decoder.lin.weight"), try unet.floats(named: "lin.weight"))
        XCTAssertEqual(try pipeline.floats(named: "unet.conv.weight"), try unet.floats(named: "conv.weight"))
    }
}
