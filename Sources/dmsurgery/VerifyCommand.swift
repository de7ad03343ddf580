import ArgumentParser
import Foundation
import Surgery
import TensorFormats
import Workflows

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Validate a checkpoint strictly, scan every float tensor for NaN/Inf, and check sha256 manifests.",
        discussion: """
        Validation applies every rule of the reference safetensors reader plus duplicate keys \
        (formats/safetensors.md). Every floating-point and complex tensor is scanned; tensors holding NaN \
        or infinities are listed with their counts. Manifests use sha256sum's format ('<hex>  <path>'), one \
        line per file (each shard of a sharded checkpoint); --sha256 matches lines by path, then by file name.

        Exit status: 0 valid and clean; 1 NaN/Inf found or a checksum mismatch; 2 invalid or unreadable \
        input; 64 usage error.
        """
    )

    @Argument(help: "Checkpoint: a .safetensors file, a *.index.json, a model folder, or - for standard input.")
    var checkpoint: String

    @Option(name: .customLong("sha256"), help: ArgumentHelp("Check the files against this sha256sum manifest.", valueName: "manifest"))
    var manifest: String?

    @Option(name: .customLong("write-sha256"), help: ArgumentHelp("Write a sha256sum manifest of the files here (- for standard output).", valueName: "manifest"))
    var writeManifest: String?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @OptionGroup var input: InputOptions
    @OptionGroup var common: CommonOptions

    func run() throws {
        try InputSet.declare(inputs: [(checkpoint, "CHECKPOINT"), (manifest, "--sha256")], outputs: [(writeManifest, "--write-sha256")])
        let expected = try manifest.map { path -> [ManifestEntry] in
            guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
                throw TensorFormatError(.notFound, "cannot read the manifest", file: path)
            }
            return try Manifest.parse(text, file: path)
        }
        let hashing = manifest != nil || writeManifest != nil
        let opened: Checkpoint
        var streamHasher: HashingSource?
        if checkpoint == "-" && hashing && !isRegularFile(STDIN_FILENO) {
            let hasher = HashingSource(FileDescriptorSource(fd: STDIN_FILENO, name: "-"))
            streamHasher = hasher
            opened = try Checkpoint.openSniffing(hasher, options: input.open)
        } else {
            opened = try openCheckpoint(checkpoint, input, wholePipeline: true)
        }
        let bar = ProgressBar("verify", total: opened.byteCount, quiet: common.quiet)
        let report = try Verifier.verify(opened, hashing: hashing, streamHasher: streamHasher, progress: bar.update)
        bar.finish()

        var mismatches: [(path: String, expected: String?, actual: String)] = []
        if let expected {
            for digest in report.digests {
                let listed = Manifest.lookup(digest.path, in: expected)
                if listed?.digest != digest.digest { mismatches.append((digest.path, listed?.digest, digest.digest)) }
            }
        }
        if let writeManifest {
            let text = report.digests.map(\.line).joined(separator: "\n") + "\n"
            if writeManifest == "-" {
                try emit(text)
            } else {
                let output = try OutputFile(path: writeManifest)
                try output.write(Array(text.utf8))
                try output.commit()
            }
        }
        if json {
            try emit(JSONWriter.pretty(reportJSON(report, mismatches: mismatches, checked: expected != nil)))
        } else if writeManifest != "-" {
            try emit(text(report, mismatches: mismatches, checked: expected != nil))
        }
        if report.hasProblems || !mismatches.isEmpty { throw ExitStatus.problemsFound }
    }

    private func text(_ report: VerifyReport, mismatches: [(path: String, expected: String?, actual: String)], checked: Bool) -> String {
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

    private func reportJSON(_ report: VerifyReport, mismatches: [(path: String, expected: String?, actual: String)], checked: Bool) -> JSONValue {
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

func isRegularFile(_ fd: Int32) -> Bool {
    var st = stat()
    return fstat(fd, &st) == 0 && st.st_mode & S_IFMT == S_IFREG
}
