import Crypto
import Foundation
import TensorFormats

/// The sha256 that identifies a training input in the run description (formats/training.md): a regular
/// file's bytes; for a folder, a shard index or standard input, the content the checkpoint presents
/// (every tensor's name, dtype, shape and bytes in storage order, then its config.json).
enum InputDigest {
    static func sha256(_ path: String, checkpoint: Checkpoint) throws -> String {
        if path != "-", Files.isRegularFile(path) {
            return try sha256(file: path)
        }
        var hasher = SHA256()
        for entry in checkpoint.entries {
            hasher.update(data: Array("\(entry.name) \(entry.dtype.rawValue) \(entry.shape)\n".utf8))
            try checkpoint.read(entry) { hasher.update(bufferPointer: $0) }
        }
        if let config = checkpoint.configJSON { hasher.update(data: Array(config.utf8)) }
        return hex(hasher.finalize())
    }

    /// A file's bytes, read in 4 MiB pieces.
    static func sha256(file path: String) throws -> String {
        let map = try MappedFile(path: path)
        var hasher = SHA256()
        var start = 0
        while start < map.size {
            let end = min(map.size, start + (4 << 20))
            hasher.update(bufferPointer: map.bytes(start..<end))
            map.release(start..<end)
            start = end
        }
        return hex(hasher.finalize())
    }

    private static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}
