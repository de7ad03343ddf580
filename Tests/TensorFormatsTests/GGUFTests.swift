import Foundation
import TensorFormats
import XCTest

/// GGUF against gguf-py 0.19 (fixtures/gguf/generate.py): block bytes, dequantized values, files gguf-py
/// wrote, and the rule each hostile file breaks.
final class GGUFTests: XCTestCase {
    private func raw(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("gguf/blocks/" + name))))
    }

    private func floats(_ name: String) throws -> [Float] {
        try raw(name).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    func testQuantizedBlocksEqualGGUFPyBytesForEveryType() throws {
        let input = try floats("input.f32")
        for type in [GGMLType.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .f16, .bf16] {
            let blocks = input.count / type.blockSize
            var out = [UInt8](repeating: 0, count: blocks * type.typeSize)
            input.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBytes { GGMLQuants.quantize(type, src.baseAddress!, blocks: blocks, into: $0.baseAddress!) }
            }
            let reference = try raw(String(describing: type) + ".bin")
            XCTAssertEqual(out.count, reference.count, type.name)
            let firstDifference = zip(out, reference).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            XCTAssertNil(firstDifference, "\(type.name): first differing byte \(firstDifference ?? -1), block \((firstDifference ?? 0) / type.typeSize)")
        }
    }

    func testDequantizedBlocksEqualGGUFPyValuesBitForBit() throws {
        for type in [GGMLType.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q4_k, .q6_k] {
            let bytes = try raw(String(describing: type) + ".bin")
            let reference = try floats(String(describing: type) + ".dequant.f32")
            let blocks = bytes.count / type.typeSize
            var out = [Float](repeating: .nan, count: blocks * type.blockSize)
            bytes.withUnsafeBytes { src in
                out.withUnsafeMutableBufferPointer { GGMLQuants.dequantize(type, src.baseAddress!, blocks: blocks, into: $0.baseAddress!) }
            }
            XCTAssertEqual(out.map(\.bitPattern), reference.map(\.bitPattern), type.name)
        }
    }

    func testFilesWrittenByGGUFPyReadToItsDequantizedValues() throws {
        let gguf = try Checkpoint.open(Fixtures.path("gguf/reference.gguf"))
        let expected = try Checkpoint.open(Fixtures.path("gguf/reference_expected.safetensors"))
        let bf16Names = Set((expected.metadata?["bf16-bits"] ?? "").split(separator: ",").map(String.init))
        XCTAssertEqual(gguf.format, .gguf)
        XCTAssertEqual(Set(gguf.entries.map(\.name)), Set(expected.entries.map(\.name)))
        for entry in gguf.entries {
            let reference = try XCTUnwrap(expected.entry(named: entry.name))
            XCTAssertEqual(entry.shape, reference.shape, entry.name)
            if bf16Names.contains(entry.name) {
                XCTAssertEqual(entry.dtype, .bf16, entry.name)
            } else {
                XCTAssertEqual(entry.dtype, reference.dtype, entry.name)
            }
            XCTAssertEqual(try gguf.bytes(of: entry), try expected.bytes(of: reference), entry.name)
        }
        XCTAssertEqual(gguf.metadata?["dmsurgery.note"], "written by gguf-py")
        XCTAssertTrue(gguf.details.contains { $0.0 == "gguf kv general.architecture" && $0.1 == "STRING sd1" })
        XCTAssertTrue(gguf.details.contains { $0.0 == "gguf tensor down.conv.weight" && $0.1.contains("Q8_0 [9, 256] (original [16, 16, 3, 3])") })
    }

    func testRangeReadsOfQuantizedTensorsMatchWholeReads() throws {
        let gguf = try Checkpoint.open(Fixtures.path("gguf/reference.gguf"))
        let entry = try XCTUnwrap(gguf.entry(named: "linear.q5_0.weight"))
        let whole = try gguf.bytes(of: entry)
        var piece: [UInt8] = []
        try gguf.read(entry, range: 130..<2050) { piece.append(contentsOf: $0) }
        XCTAssertEqual(piece, Array(whole[130..<2050]))
        var chunks: [UInt8] = []
        try gguf.read(entry, chunkBytes: 256) { chunks.append(contentsOf: $0) }
        XCTAssertEqual(chunks, whole)
    }

    func testHostileFilesFailWithTheirRuleAndFile() throws {
        let expected = try Fixtures.json("gguf/hostile/expected.json")
        XCTAssertGreaterThan(expected.count, 20)
        for (file, rule) in expected {
            let path = Fixtures.path("gguf/hostile/" + file)
            XCTAssertThrowsError(try Checkpoint.open(path), file) { error in
                guard let error = error as? TensorFormatError else { return XCTFail("\(file): \(error)") }
                XCTAssertEqual(error.code.rawValue, rule as? String, "\(file): \(error.oneLine)")
                XCTAssertEqual(error.file, path, file)
            }
        }
    }

    func testWriterHeaderIsReadBackWithShapesTypesAndOriginalShape() throws {
        let writer = try GGUFWriter(architecture: "sd1", fileType: 7, metadata: Metadata([("dmsurgery.config", "{}")]),
                                    tensors: [("a", .q8_0, [9, 256], [16, 16, 3, 3]), ("b", .f32, [3], nil)])
        XCTAssertEqual(writer.tensors.map(\.offset), [0, 2464])
        var file = writer.headerBytes
        file += [UInt8](repeating: 0, count: writer.fileSize - file.count)
        let header = try file.withUnsafeBytes { try GGUFHeader.parse($0) }
        XCTAssertEqual(header.tensors.map(\.dims), [[256, 9], [3]])
        XCTAssertEqual(header.tensors.map(\.type), [.q8_0, .f32])
        XCTAssertEqual(header.value("general.architecture"), .string("sd1"))
        XCTAssertEqual(header.value("general.quantization_version"), .integer(.u32, 2))
        XCTAssertEqual(header.value("dmsurgery.config"), .string("{}"))
        XCTAssertEqual(try file.withUnsafeBytes { try header.originalShape(of: header.tensors[0], in: $0) }, [16, 16, 3, 3])
    }

    func testPolicyKeepsSmallTensorsInFloatAndStoresConvolutionsAsRowsOf256() throws {
        func choose(_ name: String, _ shape: [Int], _ dtype: DType = .f32) throws -> (GGMLType, [Int], [Int]?) {
            let c = try GGUFTensorPolicy.choose(name: name, dtype: dtype, shape: shape, target: .q4_0)
            return (c.type, c.storedShape, c.originalShape)
        }
        XCTAssertEqual(try choose("x.bias", [320]).0, .f32)
        XCTAssertEqual(try choose("x.bias", [320], .f16).0, .f16)
        XCTAssertEqual(try choose("x.weight", [32, 32]).0, .f32)  // 1024 elements
        XCTAssertEqual(try choose("time_embedding.linear_1.weight", [1280, 320]).0, .f32)
        let conv = try choose("down.conv.weight", [320, 320, 3, 3])
        XCTAssertEqual(conv.0, .q4_0)
        XCTAssertEqual(conv.1, [3600, 256])
        XCTAssertEqual(conv.2, [320, 320, 3, 3])
        let linear = try choose("to_q.weight", [320, 320])
        XCTAssertEqual(linear.1, [320, 320])
        XCTAssertNil(linear.2)
        XCTAssertEqual(try choose("odd.weight", [40, 40]).0, .f16)
        XCTAssertEqual(try GGUFTensorPolicy.choose(name: "ids", dtype: .i64, shape: [4], target: .q8_0).type, .i64)
        XCTAssertThrowsError(try GGUFTensorPolicy.choose(name: "mask", dtype: .bool, shape: [4], target: .q8_0))
        XCTAssertEqual(GGUFTensorPolicy.architecture(names: ["down_blocks.0.downsamplers.0.conv.weight"]), "sd1")
        XCTAssertEqual(GGUFTensorPolicy.architecture(names: ["down_blocks.0.downsamplers.0.conv.weight", "add_embedding.linear_1.weight"]), "sdxl")
        XCTAssertEqual(GGUFTensorPolicy.architecture(names: ["conv_in.weight"]), "unet")
    }

    func testComfySDPolicyFollowsConvertPyThenLlamaQuantize() throws {
        func choose(_ name: String, _ shape: [Int], _ target: GGMLType?, _ dtype: DType = .f32) throws -> GGUFComfySDPolicy.Choice {
            try GGUFComfySDPolicy.choose(name: name, dtype: dtype, shape: shape, target: target)
        }
        // convert.py: F16 bulk, reshaped to rows of 256 whatever the type; 1-D and small tensors F32.
        let conv = try choose("input_blocks.1.0.in_layers.2.weight", [320, 320, 3, 3], nil)
        XCTAssertEqual(conv, .init(type: .f16, storedShape: [3600, 256], originalShape: [320, 320, 3, 3], intermediate: nil))
        XCTAssertEqual(try choose("input_blocks.1.0.in_layers.2.bias", [320], nil).type, .f32)
        XCTAssertEqual(try choose("input_blocks.1.0.in_layers.2.bias", [320], nil, .f16).type, .f16)
        XCTAssertEqual(try choose("x.weight", [32, 32], .q8_0).type, .f32)
        XCTAssertEqual(try choose("x.weight", [320, 320], nil, .bf16).type, .bf16)
        XCTAssertEqual(try choose("x.weight", [320, 768], nil).storedShape, [320, 768])
        // llama-quantize: 2-D weights quantized from the F16 values; embeddings and outer convs kept.
        XCTAssertEqual(try choose("input_blocks.1.0.in_layers.2.weight", [320, 320, 3, 3], .q8_0),
                       .init(type: .q8_0, storedShape: [3600, 256], originalShape: [320, 320, 3, 3], intermediate: .f16))
        XCTAssertEqual(try choose("time_embed.0.weight", [1280, 320], .q8_0).type, .f16)
        XCTAssertEqual(try choose("input_blocks.0.0.weight", [320, 4, 3, 3], .q4_0).type, .f16)
        XCTAssertEqual(try choose("out.2.weight", [4, 320, 3, 3], .q4_0).type, .f16)
        XCTAssertEqual(try choose("label_emb.0.0.weight", [1280, 2816], .q4_0).type, .f16)
        XCTAssertEqual(try choose("a.1.transformer_blocks.0.ff.net.2.weight", [320, 1280], .q4_0).type, .q4_1)
        XCTAssertEqual(try choose("a.1.transformer_blocks.0.ff.net.2.weight", [320, 1280], .q5_0).type, .q5_1)
        XCTAssertEqual(try choose("a.1.transformer_blocks.0.ff.net.2.weight", [320, 1280], .q8_0).type, .q8_0)
        XCTAssertEqual(try choose("a.1.transformer_blocks.0.ff.net.2.bias", [320], .q4_0).type, .f32)
        // A 4-D tensor convert.py cannot reshape stays F16: llama-quantize only takes 2-D ones.
        XCTAssertEqual(try choose("odd.weight", [30, 30, 3, 3], .q8_0).type, .f16)
        XCTAssertEqual(try choose("x.weight", [1, 320, 768], .q8_0).type, .q8_0)
        XCTAssertEqual(try choose("x.weight", [1, 320, 768], .f32).type, .f32)
        XCTAssertThrowsError(try choose("x.weight", [2, 2, 2, 2, 64], .q8_0))
        XCTAssertEqual(GGUFComfySDPolicy.ggmlDimensions([1, 320, 768]), 2)
        XCTAssertEqual(GGUFComfySDPolicy.ggmlDimensions([1, 320]), 1)
        XCTAssertEqual(GGUFComfySDPolicy.ggmlDimensions([320, 1]), 2)
        XCTAssertEqual(GGUFComfySDPolicy.fileType(target: nil, dtypes: [.bf16, .bf16, .f32]), 32)
        XCTAssertEqual(GGUFComfySDPolicy.fileType(target: nil, dtypes: [.f32, .f32, .bf16]), 1)
        XCTAssertEqual(GGUFComfySDPolicy.fileType(target: .q4_0, dtypes: [.f32]), 2)
    }
}
