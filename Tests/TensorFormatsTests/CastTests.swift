import Foundation
import TensorFormats
import XCTest

/// Casts against torch 2.13's own results (fixtures/safetensors/casts), bit for bit.
final class CastTests: XCTestCase {
    func testEveryCastMatchesTorchBitForBit() throws {
        let manifest = try Fixtures.json("safetensors/casts/manifest.json")
        let pairs = try XCTUnwrap(manifest["pairs"] as? [[String: Any]])
        XCTAssertGreaterThan(pairs.count, 20)
        for pair in pairs {
            let source = try Checkpoint.open(Fixtures.path("safetensors/casts/" + (pair["source_file"] as! String)))
            let expected = try Checkpoint.open(Fixtures.path("safetensors/casts/" + (pair["file"] as! String)))
            let input = try XCTUnwrap(source.entry(named: "x"))
            let want = try XCTUnwrap(expected.entry(named: "x"))
            let target = want.dtype
            let inBytes = try source.bytes(of: input)
            var out = [UInt8](repeating: 0, count: target.byteCount(elements: input.elementCount)!)
            inBytes.withUnsafeBytes { src in
                out.withUnsafeMutableBytes { dst in
                    _ = ElementCodec.cast(from: input.dtype, src, to: target, dst, elements: input.elementCount)
                }
            }
            let wantBytes = try expected.bytes(of: want)
            let size = target.bitsPerElement / 8
            var mismatches: [String] = []
            // NaN payloads from torch depend on where a value sits in its vectorised loop: NaN must stay NaN.
            var gotValues = [Double](repeating: 0, count: input.elementCount)
            var wantValues = gotValues
            out.withUnsafeBytes { raw in gotValues.withUnsafeMutableBufferPointer { ElementCodec.decode(target, raw, elements: input.elementCount, into: $0) } }
            wantBytes.withUnsafeBytes { raw in wantValues.withUnsafeMutableBufferPointer { ElementCodec.decode(target, raw, elements: input.elementCount, into: $0) } }
            for i in 0..<input.elementCount where out[(i * size)..<((i + 1) * size)] != wantBytes[(i * size)..<((i + 1) * size)]
                && !(gotValues[i].isNaN && wantValues[i].isNaN) {
                mismatches.append("#\(i): got \(Array(out[(i * size)..<((i + 1) * size)])) want \(Array(wantBytes[(i * size)..<((i + 1) * size)]))")
            }
            XCTAssertTrue(mismatches.isEmpty, "\(input.dtype.rawValue)->\(target.rawValue): \(mismatches.count) mismatches, first \(mismatches.prefix(3))")
        }
    }

    func testOverflowIsCounted() {
        let values: [Float] = [1, 70000, -1e30, .infinity, .nan]
        var out = [UInt8](repeating: 0, count: 10)
        let overflow = values.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { ElementCodec.cast(from: .f32, src, to: .f16, $0, elements: 5) }
        }
        XCTAssertEqual(overflow, 2, "70000 and -1e30 overflow half; infinity and NaN were not finite to begin with")
    }

    func testSubByteTypesRoundTripEveryCode() {
        for dtype in [DType.f4, .f6e2m3, .f6e3m2] {
            let format = ElementCodec.miniFloat(dtype)!
            for code in 0..<(1 << dtype.bitsPerElement) {
                let value = format.decode(UInt8(code))
                let back = format.encode(Float(value)).code
                let negativeZero = value == 0 && value.sign == .minus
                XCTAssertEqual(back, UInt8(code), "\(dtype.rawValue) code \(code) -> \(value)\(negativeZero ? " (-0)" : "")")
            }
        }
    }

    func testPackedCodesAreLeastSignificantBitsFirst() {
        let bytes: [UInt8] = [0x21, 0x43]
        var values = [Double](repeating: 0, count: 4)
        bytes.withUnsafeBytes { raw in values.withUnsafeMutableBufferPointer { ElementCodec.decode(.f4, raw, elements: 4, into: $0) } }
        XCTAssertEqual(values, [0.5, 1.0, 1.5, 2.0])
    }
}
