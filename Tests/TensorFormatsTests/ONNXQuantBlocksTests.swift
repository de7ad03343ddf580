import Foundation
@testable import TensorFormats
import XCTest

/// The quantization codecs against fixtures/onnx/quant-goldens.json, written by onnxruntime 1.32's
/// MatMulNBitsQuantizer and DequantizeLinear and onnx.reference (fixtures/onnx/generate.py).
final class ONNXQuantBlocksTests: XCTestCase {
    private func goldens(_ key: String) throws -> [[String: Any]] {
        let json = try Fixtures.json("onnx/quant-goldens.json")
        return try XCTUnwrap(json[key] as? [[String: Any]])
    }

    private func bytes(_ hex: Any?) throws -> [UInt8] {
        let text = try XCTUnwrap(hex as? String)
        var out = [UInt8]()
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            out.append(try XCTUnwrap(UInt8(text[index..<next], radix: 16)))
            index = next
        }
        return out
    }

    private func floats(_ hex: Any?) throws -> [Float] {
        ONNXQuantBlocks.floats(littleEndian: try bytes(hex))
    }

    private func ints(_ value: Any?) throws -> [Int] {
        try XCTUnwrap(value as? [Int])
    }

    func testMatMulNBitsBytesEqualOnnxruntimeQuantizer() throws {
        let cases = try goldens("matmulnbits")
        XCTAssertGreaterThanOrEqual(cases.count, 9)
        for c in cases {
            let name = try XCTUnwrap(c["name"] as? String)
            let n = try XCTUnwrap(c["n"] as? Int), k = try XCTUnwrap(c["k"] as? Int)
            let bits = try XCTUnwrap(c["bits"] as? Int), block = try XCTUnwrap(c["block_size"] as? Int)
            let q = try ONNXQuantBlocks.matMulNBits(weight: try floats(c["weight"]), n: n, k: k, bits: bits, blockSize: block)
            XCTAssertEqual(q.packed.bytes, try bytes(c["packed"]), name)
            XCTAssertEqual(q.packed.shape, try ints(c["packed_shape"]), name)
            XCTAssertEqual(q.packed.dataType, .uint8, name)
            XCTAssertEqual(q.scales.bytes, try bytes(c["scales"]), name)
            XCTAssertEqual(q.scales.shape, try ints(c["scales_shape"]), name)
            XCTAssertEqual(q.scales.dataType, .float, name)
            XCTAssertEqual(q.zeroPoints.bytes, try bytes(c["zero_points"]), name)
            XCTAssertEqual(q.zeroPoints.shape, try ints(c["zero_points_shape"]), name)
        }
    }

    func testMatMulNBitsDequantizesToWhatOnnxruntimeMultipliesBy() throws {
        for c in try goldens("matmulnbits") {
            let name = try XCTUnwrap(c["name"] as? String)
            let n = try XCTUnwrap(c["n"] as? Int), k = try XCTUnwrap(c["k"] as? Int)
            let bits = try XCTUnwrap(c["bits"] as? Int), block = try XCTUnwrap(c["block_size"] as? Int)
            let values = try ONNXQuantBlocks.dequantizeMatMulNBits(
                packed: try bytes(c["packed"]), scales: try floats(c["scales"]), zeroPoints: try bytes(c["zero_points"]),
                n: n, k: k, bits: bits, blockSize: block)
            XCTAssertEqual(values.map(\.bitPattern), try floats(c["ort_dequantized"]).map(\.bitPattern), name)
        }
    }

    func testMatMulNBitsRoundTripErrorIsWithinAStep() throws {
        // Away from the degenerate cases RTN's error is at most a step: half from rounding, and up to
        // half again at the block's ends, where the rounded zero point pushes a value past the clamp.
        let (n, k, block) = (3, 200, 32)
        let weight = (0..<(n * k)).map { Float(($0 * 7919) % 3001) / 1000 - 2 }
        for bits in [4, 8] {
            let q = try ONNXQuantBlocks.matMulNBits(weight: weight, n: n, k: k, bits: bits, blockSize: block)
            let back = try ONNXQuantBlocks.dequantizeMatMulNBits(
                packed: q.packed.bytes, scales: ONNXQuantBlocks.floats(littleEndian: q.scales.bytes),
                zeroPoints: q.zeroPoints.bytes, n: n, k: k, bits: bits, blockSize: block)
            let scales = ONNXQuantBlocks.floats(littleEndian: q.scales.bytes)
            for row in 0..<n {
                for i in 0..<k {
                    let step = scales[row * q.scales.shape[1] + i / block]
                    XCTAssertLessThanOrEqual(abs(back[row * k + i] - weight[row * k + i]), step * 1.0001, "bits \(bits)")
                }
            }
        }
    }

    func testMatMulNBitsRejectsWhatOnnxruntimeWouldCorrupt() {
        XCTAssertThrowsError(try ONNXQuantBlocks.matMulNBits(weight: [1, .nan], n: 1, k: 2, bits: 4, blockSize: 32)) {
            XCTAssertEqual(($0 as? TensorFormatError)?.code, .unsupported)
        }
        XCTAssertThrowsError(try ONNXQuantBlocks.matMulNBits(weight: [3e38, -3e38], n: 1, k: 2, bits: 4, blockSize: 32)) {
            XCTAssertEqual(($0 as? TensorFormatError)?.code, .unsupported)
        }
        XCTAssertThrowsError(try ONNXQuantBlocks.matMulNBits(weight: [1, 2], n: 1, k: 2, bits: 3, blockSize: 32)) {
            XCTAssertEqual(($0 as? TensorFormatError)?.code, .invalidArgument)
        }
        XCTAssertThrowsError(try ONNXQuantBlocks.matMulNBits(weight: [1, 2], n: 1, k: 2, bits: 4, blockSize: 48)) {
            XCTAssertEqual(($0 as? TensorFormatError)?.code, .invalidArgument)
        }
        XCTAssertThrowsError(try ONNXQuantBlocks.matMulNBits(weight: [1, 2, 3], n: 1, k: 2, bits: 4, blockSize: 32)) {
            XCTAssertEqual(($0 as? TensorFormatError)?.code, .invalidArgument)
        }
    }

    func testDequantizeMatMulNBitsChecksByteCounts() {
        XCTAssertThrowsError(try ONNXQuantBlocks.dequantizeMatMulNBits(
            packed: [UInt8](repeating: 0, count: 15), scales: [1], zeroPoints: [8], n: 1, k: 32, bits: 4, blockSize: 32)) {
            XCTAssertEqual(($0 as? TensorFormatError)?.code, .sizeMismatch)
        }
        XCTAssertThrowsError(try ONNXQuantBlocks.dequantizeMatMulNBits(
            packed: [UInt8](repeating: 0, count: 16), scales: [1], zeroPoints: [8, 8], n: 1, k: 32, bits: 4, blockSize: 32)) {
            XCTAssertEqual(($0 as? TensorFormatError)?.code, .sizeMismatch)
        }
        XCTAssertThrowsError(try ONNXQuantBlocks.dequantizeMatMulNBits(
            packed: [], scales: [], zeroPoints: nil, n: Int.max, k: 2, bits: 4, blockSize: 32)) {
            XCTAssertEqual(($0 as? TensorFormatError)?.code, .invalidShape)
        }
    }

    func testDequantizeLinearCodecsMatchQuantizeLinearAndOnnxruntime() throws {
        let cases = try goldens("dequantizelinear")
        XCTAssertGreaterThanOrEqual(cases.count, 5)
        for c in cases {
            let name = try XCTUnwrap(c["name"] as? String)
            let shape = try ints(c["shape"])
            let weight = try floats(c["weight"])
            let axis = try XCTUnwrap(c["axis"] as? Int), block = try XCTUnwrap(c["block_size"] as? Int)
            let q: ONNXQuantBlocks.DequantizeLinearWeight
            if (c["type"] as? String) == "INT8" {
                q = try ONNXQuantBlocks.quantizeInt8PerChannel(weight: weight, shape: shape)
                XCTAssertNil(q.zeroPoint, name)
                XCTAssertEqual(q.quantized.dataType, .int8, name)
            } else {
                q = try ONNXQuantBlocks.quantizeBlockedUInt4(weight: weight, shape: shape, axis: axis, blockSize: block)
                XCTAssertEqual(q.quantized.dataType, .uint4, name)
                XCTAssertEqual(q.zeroPoint?.bytes, try bytes(c["zero_point"]), name)
                XCTAssertEqual(q.zeroPoint?.shape, try ints(c["scale_shape"]), name)
            }
            XCTAssertEqual(q.axis, axis, name)
            XCTAssertEqual(q.blockSize, block, name)
            XCTAssertEqual(q.quantized.shape, shape, name)
            XCTAssertEqual(q.quantized.bytes, try bytes(c["quantized"]), name)
            XCTAssertEqual(q.scale.bytes, try bytes(c["scale"]), name)
            XCTAssertEqual(q.scale.shape, try ints(c["scale_shape"]), name)
            let back = try ONNXQuantBlocks.dequantizeLinear(q.quantized, scale: q.scale, zeroPoint: q.zeroPoint, axis: q.axis, blockSize: q.blockSize)
            XCTAssertEqual(back.map(\.bitPattern), try floats(c["dequantized"]).map(\.bitPattern), name)
        }
    }

    func testInt4ConvWeightsStayUnderAFifthOfFloat() throws {
        // A 3x3 conv whose 256 input channels fill the blocks: 0.125 + 1.125 / block of the f32 bytes.
        let shape = [16, 256, 3, 3]
        let weight = (0..<shape.reduce(1, *)).map { Float(($0 * 7919) % 1000) / 1000 - 0.5 }
        for block in [32, 64, 128] {
            let q = try ONNXQuantBlocks.quantizeBlockedUInt4(weight: weight, shape: shape, blockSize: block)
            let bytes = q.quantized.bytes.count + q.scale.bytes.count + (q.zeroPoint?.bytes.count ?? 0)
            XCTAssertEqual(Double(bytes) / Double(weight.count * 4), 0.125 + 1.125 / Double(block), accuracy: 1e-9, "block \(block)")
            XCTAssertLessThan(Double(bytes) / Double(weight.count * 4), 0.17, "block \(block)")
        }
    }

    func testDequantizeLinearRejectsShapesThatDisagree() {
        let x = ONNXQuantBlocks.Tensor(bytes: [0, 0, 0, 0], shape: [2, 4], dataType: .uint4)
        let scale = ONNXQuantBlocks.Tensor(bytes: [UInt8](repeating: 0, count: 24), shape: [2, 3], dataType: .float)
        XCTAssertThrowsError(try ONNXQuantBlocks.dequantizeLinear(x, scale: scale, zeroPoint: nil, axis: 1, blockSize: 2)) {
            XCTAssertEqual(($0 as? TensorFormatError)?.code, .invalidShape)
        }
        let short = ONNXQuantBlocks.Tensor(bytes: [0, 0, 0], shape: [2, 4], dataType: .uint4)
        let good = ONNXQuantBlocks.Tensor(bytes: [UInt8](repeating: 0, count: 16), shape: [2, 2], dataType: .float)
        XCTAssertThrowsError(try ONNXQuantBlocks.dequantizeLinear(short, scale: good, zeroPoint: nil, axis: 1, blockSize: 2)) {
            XCTAssertEqual(($0 as? TensorFormatError)?.code, .sizeMismatch)
        }
        let wrongType = ONNXQuantBlocks.Tensor(bytes: [0, 0, 0, 0], shape: [2, 2], dataType: .int8)
        XCTAssertThrowsError(try ONNXQuantBlocks.dequantizeLinear(x, scale: good, zeroPoint: wrongType, axis: 1, blockSize: 2)) {
            XCTAssertEqual(($0 as? TensorFormatError)?.code, .invalidArgument)
        }
    }
}
