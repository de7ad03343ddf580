import Foundation
import TensorMath

/// Reads the f32 safetensors fixtures this package generates (8-byte LE header length, JSON header,
/// raw little-endian data). Test-only: the product reads checkpoints through TensorFormats.
enum FixtureReader {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/engine")

    struct Failure: Error, CustomStringConvertible { var description: String }

    static func read(_ url: URL) throws -> [String: Tensor] {
        let data = try Data(contentsOf: url)
        guard data.count >= 8 else { throw Failure(description: "\(url.path): too short") }
        let n = data.prefix(8).withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        guard let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any] else {
            throw Failure(description: "\(url.path): bad header")
        }
        var result: [String: Tensor] = [:]
        let base = 8 + n
        for (name, value) in header where name != "__metadata__" {
            guard let entry = value as? [String: Any], entry["dtype"] as? String == "F32",
                  let shape = (entry["shape"] as? [NSNumber])?.map(\.intValue),
                  let offsets = (entry["data_offsets"] as? [NSNumber])?.map(\.intValue) else {
                throw Failure(description: "\(url.path): \(name) is not an F32 entry")
            }
            let count = shape.reduce(1, *)
            let bytes = data.subdata(in: (base + offsets[0])..<(base + offsets[1]))
            let floats = bytes.withUnsafeBytes { raw in
                (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            }
            result[name] = Tensor(shape: shape, data: floats)
        }
        return result
    }

    static func read(_ relative: String) throws -> [String: Tensor] {
        try read(root.appendingPathComponent(relative))
    }

    static func text(_ relative: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(relative), encoding: .utf8)
    }
}

/// max |a - b| / max |b|: the error measure the engine's tolerances use.
func relativeMaxError(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.shape == b.shape, "shapes \(a.shape) vs \(b.shape)")
    var diff: Float = 0, scale: Float = 0
    for i in 0..<a.count {
        diff = max(diff, abs(a.data[i] - b.data[i]))
        scale = max(scale, abs(b.data[i]))
    }
    return scale == 0 ? diff : diff / scale
}
