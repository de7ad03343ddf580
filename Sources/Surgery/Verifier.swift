import Crypto
import Dispatch
import Foundation
import TensorFormats

/// A byte source that hashes what passes through it, so a stream is verified and hashed in one read.
public final class HashingSource: ByteSource {
    private let base: ByteSource
    private var hasher = SHA256()

    public init(_ base: ByteSource) { self.base = base }

    public var name: String { base.name }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(TensorFormatError) -> Int {
        let n = try base.read(into: buffer)
        if n > 0 { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n])) }
        return n
    }

    public func finalize() -> String { hexDigest(hasher.finalize()) }
}

func hexDigest<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
    digest.map { byte in
        let hex = String(byte, radix: 16)
        return byte < 16 ? "0" + hex : hex
    }.joined()
}

/// One file's line in a `sha256sum` manifest.
public struct ManifestEntry: Sendable, Equatable {
    public var digest: String
    public var path: String

    /// `sha256sum`'s text line: digest, two spaces, path.
    public var line: String { "\(digest)  \(path)" }
}

public enum Manifest {
    /// Parses `sha256sum` output (text ` ` or binary `*` mode markers; blank lines and `#` comments skipped).
    public static func parse(_ text: String, file: String) throws -> [ManifestEntry] {
        var entries: [ManifestEntry] = []
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            if line.isEmpty || line.hasPrefix("#") { continue }
            let digest = line.prefix(64)
            let rest = line.dropFirst(64)
            guard digest.count == 64, digest.allSatisfy({ $0.isHexDigit }), rest.count >= 2,
                  rest.first == " ", rest.dropFirst().first == " " || rest.dropFirst().first == "*" else {
                throw TensorFormatError(.invalidArgument, "line \(number + 1) is not '<sha256>  <path>'", file: file)
            }
            entries.append(ManifestEntry(digest: digest.lowercased(), path: String(rest.dropFirst(2))))
        }
        return entries
    }

    /// The entry for `path`: an exact match, else the only entry with the same file name.
    public static func lookup(_ path: String, in entries: [ManifestEntry]) -> ManifestEntry? {
        if let exact = entries.first(where: { $0.path == path }) { return exact }
        let name = (path as NSString).lastPathComponent
        let sameName = entries.filter { ($0.path as NSString).lastPathComponent == name }
        return sameName.count == 1 ? sameName[0] : nil
    }
}

/// Non-finite values found in one tensor.
public struct TensorScanResult: Sendable {
    public var name: String
    public var dtype: DType
    public var counts: NonFiniteCounts
}

public struct VerifyReport: Sendable {
    public var checkpoint: String
    public var format: CheckpointFormat
    public var tensorCount = 0
    public var floatTensorsScanned = 0
    public var elementsScanned = 0
    /// Tensors holding NaN or infinities.
    public var nonFinite: [TensorScanResult] = []
    public var digests: [ManifestEntry] = []

    public var hasProblems: Bool { !nonFinite.isEmpty }
}

/// Strict validation (done by opening), a NaN/Inf scan of every float tensor, and sha256 of every file.
public enum Verifier {
    public static func verify(_ checkpoint: Checkpoint, hashing: Bool, streamHasher: HashingSource? = nil,
                              progress: ProgressSink? = nil) throws -> VerifyReport {
        var report = VerifyReport(checkpoint: checkpoint.name, format: checkpoint.format)
        report.tensorCount = checkpoint.entries.count
        // Files are hashed on their own thread while tensors are scanned: hashing is the long pole.
        let group = DispatchGroup()
        let digests = DigestBox()
        if hashing && streamHasher == nil && !checkpoint.isSequential {
            let paths = checkpoint.files.map(\.path)
            let displayNames = displayPaths(checkpoint)
            DispatchQueue.global().async(group: group) {
                digests.set(Result { try zip(paths, displayNames).map { ManifestEntry(digest: try sha256(file: $0.0), path: $0.1) } })
            }
        }
        var done = 0
        for entry in checkpoint.entries {
            if entry.dtype.isFloatingPoint || entry.dtype.isComplex {
                var counts = NonFiniteCounts()
                try checkpoint.read(entry) { piece in
                    let elements = piece.count * 8 / entry.dtype.bitsPerElement
                    counts = counts + ValueScan.nonFinite(entry.dtype, piece, elements: elements)
                    done += piece.count
                    progress?(done)
                }
                report.floatTensorsScanned += 1
                report.elementsScanned += entry.elementCount
                if counts.total > 0 { report.nonFinite.append(TensorScanResult(name: entry.name, dtype: entry.dtype, counts: counts)) }
            } else if checkpoint.isSequential {
                try checkpoint.read(entry) { piece in done += piece.count; progress?(done) }
            }
        }
        try checkpoint.finish()
        group.wait()
        if let streamHasher, hashing {
            report.digests = [ManifestEntry(digest: streamHasher.finalize(), path: checkpoint.name)]
        } else if let result = digests.get() {
            report.digests = try result.get()
        }
        return report
    }

    /// Names to print in a manifest: the user's path for one file, each shard's path otherwise.
    static func displayPaths(_ checkpoint: Checkpoint) -> [String] {
        if checkpoint.format == .safetensors { return [checkpoint.name] }
        return checkpoint.files.map(\.path)
    }

    /// sha256 of a whole file, read in large blocks.
    public static func sha256(file path: String) throws -> String {
        let map = try MappedFile(path: path)
        var hasher = SHA256()
        let block = 8 << 20
        var start = 0
        while start < map.size {
            let end = min(map.size, start + block)
            if end < map.size { map.willRead(end..<min(map.size, end + block)) }
            hasher.update(bufferPointer: map.bytes(start..<end))
            map.release(start..<end)
            start = end
        }
        return hexDigest(hasher.finalize())
    }
}

private final class DigestBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<[ManifestEntry], Error>?
    func set(_ result: Result<[ManifestEntry], Error>) { lock.lock(); value = result; lock.unlock() }
    func get() -> Result<[ManifestEntry], Error>? { lock.lock(); defer { lock.unlock() }; return value }
}
