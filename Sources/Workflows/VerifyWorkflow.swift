import Foundation
import Surgery
import TensorFormats

/// What `verify` is told, as plain values.
public struct VerifySettings: Sendable {
    public var checkpoint: String
    /// A sha256sum manifest to check the files against.
    public var manifest: String?
    /// Where to write a manifest of the files (`-`: standard output, printed by the caller).
    public var writeManifest: String?
    public var json = false
    public var open = OpenOptions()
    public var quiet = false

    public init(checkpoint: String) {
        self.checkpoint = checkpoint
    }
}

/// A file whose digest is not the manifest's (`expected` nil: the manifest does not list it).
public typealias ManifestMismatch = (path: String, expected: String?, actual: String)

/// What `verify` found: the report, the manifest lines it made, and the text it prints.
public struct VerifyOutcome {
    public let report: VerifyReport
    public let mismatches: [ManifestMismatch]
    /// sha256sum lines of the files, newline-terminated (empty unless hashing).
    public let manifest: String
    /// The report (JSON or text); nil when the manifest goes to standard output and the text would mix with it.
    public let output: String?
    /// NaN/Inf found or a checksum mismatch (exit 1).
    public var hasProblems: Bool { report.hasProblems || !mismatches.isEmpty }
}

/// `verify`'s body: strict validation, a NaN/Inf scan of every float tensor, sha256 manifests.
public enum VerifyWorkflow {
    public static func run(_ settings: VerifySettings) throws -> VerifyOutcome {
        let checkpoint = settings.checkpoint, manifest = settings.manifest, writeManifest = settings.writeManifest
        try InputSet.declare(inputs: [(checkpoint, "CHECKPOINT"), (manifest, "--sha256")], outputs: [(writeManifest, "--write-sha256")])
        let expected = try manifest.map { path -> [ManifestEntry] in
            try Manifest.parse(try MappedFile.text(of: path, what: "the manifest"), file: path)
        }
        let hashing = manifest != nil || writeManifest != nil
        let opened: Checkpoint
        var streamHasher: HashingSource?
        if checkpoint == "-" && hashing && !isRegularFile(STDIN_FILENO) {
            let hasher = HashingSource(FileDescriptorSource(fd: STDIN_FILENO, name: "-"))
            streamHasher = hasher
            opened = try Checkpoint.openSniffing(hasher, options: settings.open)
        } else {
            opened = try openCheckpoint(checkpoint, settings.open, wholePipeline: true)
        }
        let bar = ProgressBar("verify", total: opened.byteCount, quiet: settings.quiet)
        let report = try Verifier.verify(opened, hashing: hashing, streamHasher: streamHasher, progress: bar.update)
        bar.finish()

        var mismatches: [ManifestMismatch] = []
        if let expected {
            for digest in report.digests {
                let listed = Manifest.lookup(digest.path, in: expected)
                if listed?.digest != digest.digest { mismatches.append((digest.path, listed?.digest, digest.digest)) }
            }
        }
        let lines = hashing ? report.digests.map(\.line).joined(separator: "\n") + "\n" : ""
        if let writeManifest, writeManifest != "-" {
            let output = try OutputFile(path: writeManifest)
            try output.write(Array(lines.utf8))
            try output.commit()
        }
        let output: String?
        if settings.json {
            output = JSONWriter.pretty(reportJSON(report, mismatches: mismatches, checked: expected != nil))
        } else if writeManifest != "-" {
            output = text(report, mismatches: mismatches, checked: expected != nil)
        } else {
            output = nil
        }
        return VerifyOutcome(report: report, mismatches: mismatches, manifest: lines, output: output)
    }

    public static func text(_ report: VerifyReport, mismatches: [ManifestMismatch], checked: Bool) -> String {
        var lines = ["\(report.checkpoint): valid \(report.format.rawValue), \(formatCount(report.tensorCount)) tensors, "
                     + "\(formatCount(report.floatTensorsScanned)) float tensors scanned (\(formatCount(report.elementsScanned)) values)"]
        if report.nonFinite.isEmpty {
            lines.append("NaN/Inf: none")
        } else {
            lines.append("NaN/Inf in \(report.nonFinite.count) tensors:")
            var rows = [["  TENSOR", "DTYPE", "NAN", "+INF", "-INF"]]
            for t in report.nonFinite {
                rows.append(["  " + t.name, t.dtype.rawValue, formatCount(t.counts.nan), formatCount(t.counts.positiveInfinity), formatCount(t.counts.negativeInfinity)])
            }
            lines.append(table(rows))
        }
        for digest in report.digests {
            let status: String
            if !checked {
                status = ""
            } else if let bad = mismatches.first(where: { $0.path == digest.path }) {
                status = bad.expected == nil ? "  NOT IN MANIFEST" : "  MISMATCH (manifest has \(bad.expected!))"
            } else {
                status = "  OK"
            }
            lines.append("sha256 \(digest.line)\(status)")
        }
        return lines.joined(separator: "\n")
    }

    public static func reportJSON(_ report: VerifyReport, mismatches: [ManifestMismatch], checked: Bool) -> JSONValue {
        .object([
            JSONMember("checkpoint", .string(report.checkpoint)),
            JSONMember("format", .string(report.format.rawValue)),
            JSONMember("valid", .bool(true)),
            JSONMember("tensors", .int(report.tensorCount)),
            JSONMember("float_tensors_scanned", .int(report.floatTensorsScanned)),
            JSONMember("values_scanned", .int(report.elementsScanned)),
            JSONMember("non_finite", .array(report.nonFinite.map { t in
                .object([
                    JSONMember("name", .string(t.name)), JSONMember("dtype", .string(t.dtype.rawValue)),
                    JSONMember("nan", .int(t.counts.nan)), JSONMember("pos_inf", .int(t.counts.positiveInfinity)),
                    JSONMember("neg_inf", .int(t.counts.negativeInfinity)),
                ])
            })),
            JSONMember("sha256", .array(report.digests.map { d in
                let bad = mismatches.first(where: { $0.path == d.path })
                return .object([
                    JSONMember("path", .string(d.path)), JSONMember("digest", .string(d.digest)),
                    JSONMember("expected", checked ? (bad.map { $0.expected.map(JSONValue.string) ?? .null } ?? .string(d.digest)) : .null),
                    JSONMember("ok", checked ? .bool(bad == nil) : .null),
                ])
            })),
            JSONMember("problems", .bool(report.hasProblems || !mismatches.isEmpty)),
        ])
    }
}

/// Whether a descriptor is a regular file (a pipe is hashed as it is read instead of read twice).
func isRegularFile(_ fd: Int32) -> Bool { Files.isRegularFile(descriptor: fd) }
