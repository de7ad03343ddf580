import Crypto
import Dispatch
import Foundation
import TensorMath
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

    /// Reads (and hashes) whatever the consumer left unread, so the digest covers the whole input.
    public func drain() throws {
        var scratch = [UInt8](repeating: 0, count: 1 << 16)
        while try scratch.withUnsafeMutableBytes({ (raw) throws(TensorFormatError) in try read(into: raw) }) > 0 {}
    }
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

    /// `sha256sum`'s text line: digest, two spaces, path. A path holding a backslash, newline or
    /// carriage return is written as GNU coreutils does: the line starts with `\` and those three are
    /// escaped (`\\`, `\n`, `\r`), so every path stays on one line and reads back.
    public var line: String {
        guard path.unicodeScalars.contains(where: { $0 == "\\" || $0 == "\n" || $0 == "\r" }) else { return "\(digest)  \(path)" }
        var escaped = ""
        for scalar in path.unicodeScalars {
            switch scalar {
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return "\\\(digest)  \(escaped)"
    }

    /// The path of an escaped line's name part (`\\`, `\n`, `\r`), nil when an escape is not one of these.
    static func unescape(_ text: Substring) -> String? {
        var out = ""
        var iterator = text.unicodeScalars.makeIterator()
        while let scalar = iterator.next() {
            guard scalar == "\\" else { out.unicodeScalars.append(scalar); continue }
            switch iterator.next() {
            case "\\": out += "\\"
            case "n": out += "\n"
            case "r": out += "\r"
            default: return nil
            }
        }
        return out
    }
}

public enum Manifest {
    /// Parses `sha256sum` output (text ` ` or binary `*` mode markers; blank lines and `#` comments skipped).
    public static func parse(_ text: String, file: String) throws -> [ManifestEntry] {
        var entries: [ManifestEntry] = []
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            if line.isEmpty || line.hasPrefix("#") { continue }
            let escaped = line.hasPrefix("\\")
            if escaped { line = line.dropFirst() }
            let digest = line.prefix(64)
            let rest = line.dropFirst(64)
            guard digest.count == 64, digest.allSatisfy({ $0.isHexDigit }), rest.count >= 2,
                  rest.first == " ", rest.dropFirst().first == " " || rest.dropFirst().first == "*" else {
                throw SurgeryError(.invalidArgument, "line \(number + 1) is not '<sha256>  <path>'", file: file)
            }
            let name = rest.dropFirst(2)
            guard let path = escaped ? ManifestEntry.unescape(name) : String(name) else {
                throw SurgeryError(.invalidArgument, "line \(number + 1) has an unknown escape in its path", file: file)
            }
            entries.append(ManifestEntry(digest: digest.lowercased(), path: path))
        }
        return entries
    }

    /// The entry for `path`: an exact match, else the only entry with the same file name.
    public static func lookup(_ path: String, in entries: [ManifestEntry]) -> ManifestEntry? {
        if let exact = entries.first(where: { $0.path.utf8.elementsEqual(path.utf8) }) { return exact }
        let name = (path as NSString).lastPathComponent
        let sameName = entries.filter { ($0.path as NSString).lastPathComponent.utf8.elementsEqual(name.utf8) }
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
        // Mapped safetensors are hashed in the pass that scans them: each file's header, then its tensors in
        // storage order, which validation guarantees tile the rest of the file exactly. Every chunk is read
        // once, hashed on this thread while the other core scans it.
        let inline = hashing && streamHasher == nil && !checkpoint.isSequential && checkpoint.format != .hdf5 && checkpoint.format != .pytorch
        var fileHashers: [SHA256] = []
        if inline {
            fileHashers = try checkpoint.files.map { file in
                var hasher = SHA256()
                let map = try MappedFile(path: file.path)
                hasher.update(bufferPointer: map.bytes(0..<file.header.dataStart))
                return hasher
            }
        }
        // Other files (HDF5, zstd) are hashed as they are on disk, on a thread of their own.
        let group = DispatchGroup()
        let digests = DigestBox()
        if hashing && streamHasher == nil && !inline {
            let paths = checkpoint.files.map(\.path)
            let displayNames = displayPaths(checkpoint)
            DispatchQueue.global().async(group: group) {
                digests.set(Result { try zip(paths, displayNames).map { ManifestEntry(digest: try sha256(file: $0.0), path: $0.1) } })
            }
        }
        var done = 0
        for entry in checkpoint.entries {
            let scanned = entry.dtype.isFloatingPoint || entry.dtype.isComplex
            guard scanned || inline || checkpoint.isSequential else { continue }
            var counts = NonFiniteCounts()
            try checkpoint.read(entry) { piece in
                let elements = piece.count * 8 / entry.dtype.bitsPerElement
                if inline {
                    var hasher = fileHashers[entry.fileIndex]
                    if scanned {
                        var found = NonFiniteCounts()
                        Parallel.concurrently({ hasher.update(bufferPointer: piece) },
                                     { found = ValueScan.nonFinite(entry.dtype, piece, elements: elements) })
                        counts = counts + found
                    } else {
                        hasher.update(bufferPointer: piece)
                    }
                    fileHashers[entry.fileIndex] = hasher
                } else if scanned {
                    counts = counts + ValueScan.nonFinite(entry.dtype, piece, elements: elements)
                }
                done += piece.count
                progress?(done)
            }
            if scanned {
                report.floatTensorsScanned += 1
                report.elementsScanned += entry.elementCount
                if counts.total > 0 { report.nonFinite.append(TensorScanResult(name: entry.name, dtype: entry.dtype, counts: counts)) }
            }
        }
        try checkpoint.finish()
        group.wait()
        if let streamHasher, hashing {
            try streamHasher.drain()
            report.digests = [ManifestEntry(digest: streamHasher.finalize(), path: checkpoint.name)]
        } else if inline {
            report.digests = zip(fileHashers, displayPaths(checkpoint)).map { ManifestEntry(digest: hexDigest($0.0.finalize()), path: $0.1) }
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
