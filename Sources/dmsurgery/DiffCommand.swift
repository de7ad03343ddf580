import ArgumentParser
import Surgery
import TensorFormats
import Workflows

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two checkpoints: tensors only in one, dtype and shape changes, value errors, metadata.",
        discussion: """
        Values are compared across dtypes (B is the reference): max absolute error, max relative error \
        |a-b|/|b|, relative L2 norm ||a-b||/||b||, cosine similarity, and the count of values with \
        |a-b| > atol + rtol*|b| (NaN in both is equal; NaN in one counts). Tensors with identical bytes \
        are not decoded. Defaults (atol 0, rtol 0) ask for exact equality.

        Exit status: 0 the checkpoints match; 1 they differ; 2 invalid or unreadable input; 64 usage error.
        """
    )

    @Argument(help: "First checkpoint (or - for standard input).")
    var a: String

    @Argument(help: "Second checkpoint, the reference for relative errors (or - for standard input).")
    var b: String

    @Option(help: "Absolute tolerance.")
    var atol = 0.0

    @Option(help: "Relative tolerance (times |b|).")
    var rtol = 0.0

    @Flag(help: "Compare values only: a dtype change alone is not a difference.")
    var ignoreDtype = false

    @Flag(help: "Metadata differences are reported but are not a difference.")
    var ignoreMetadata = false

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Flag(help: "List every changed tensor, also those within tolerance.")
    var all = false

    @OptionGroup var input: InputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard a != "-" || b != "-" else { throw ValidationError("only one of the two checkpoints can be standard input") }
        guard atol >= 0, rtol >= 0, atol.isFinite, rtol.isFinite else { throw ValidationError("tolerances must be finite and non-negative") }
    }

    func run() throws {
        let first = try openCheckpoint(a, input, randomAccess: true, wholePipeline: true)
        let second = try openCheckpoint(b, input, randomAccess: true, wholePipeline: true)
        let options = DiffOptions(absoluteTolerance: atol, relativeTolerance: rtol, ignoreDType: ignoreDtype, ignoreMetadata: ignoreMetadata)
        let bar = ProgressBar("diff", total: first.byteCount, quiet: common.quiet)
        let report = try Differ.diff(first, second, options: options, progress: bar.update)
        bar.finish()
        try emit(json ? JSONWriter.pretty(reportJSON(report)) : text(report))
        if report.differs { throw ExitStatus.problemsFound }
    }

    private func text(_ report: DiffReport) -> String {
        var lines = ["A: \(report.a)", "B: \(report.b)"]
        if !report.onlyInA.isEmpty { lines.append("only in A (\(report.onlyInA.count)):"); lines += report.onlyInA.map { "  " + $0 } }
        if !report.onlyInB.isEmpty { lines.append("only in B (\(report.onlyInB.count)):"); lines += report.onlyInB.map { "  " + $0 } }
        let changed = report.compared.filter { !$0.identical }
        let differing = report.changed
        let listed = all ? changed : differing
        if changed.count > differing.count {
            lines.append("\(changed.count - differing.count) tensors changed within tolerance (atol \(formatNumber(atol)), rtol \(formatNumber(rtol)))"
                         + (all ? "" : "; --all lists them"))
        }
        if !listed.isEmpty {
            lines.append("changed (\(differing.count) over tolerance of \(report.compared.count) compared; atol \(formatNumber(atol)), rtol \(formatNumber(rtol))):")
            var rows = [["  TENSOR", "DTYPE", "SHAPE", "MAX_ABS", "MAX_REL", "REL_L2", "COSINE", "OVER_TOL"]]
            for t in listed {
                let dtype = t.dtypeChanged ? "\(t.dtypeA.rawValue)->\(t.dtypeB.rawValue)" : t.dtypeA.rawValue
                let shape = t.shapeChanged ? "\(formatShape(t.shapeA))->\(formatShape(t.shapeB))" : formatShape(t.shapeA)
                if let v = t.values {
                    rows.append(["  " + t.name, dtype, shape, formatNumber(v.maxAbsoluteError), formatNumber(v.maxRelativeError),
                                 formatNumber(v.relativeL2), formatNumber(v.cosineSimilarity), formatCount(v.overTolerance)])
                } else {
                    rows.append(["  " + t.name, dtype, shape, "-", "-", "-", "-", "-"])
                }
            }
            lines.append(table(rows))
        }
        if !report.metadata.isEmpty {
            lines.append("metadata differences (\(report.metadata.count)):")
            for m in report.metadata {
                func show(_ v: String?) -> String {
                    guard let v else { return "(absent)" }
                    let line = v.replacingOccurrences(of: "\n", with: " ")
                    return line.count > 60 ? String(line.prefix(60)) + "… (\(v.utf8.count) bytes)" : line
                }
                lines.append("  \(m.key): \(show(m.a)) -> \(show(m.b))")
            }
        }
        let identical = report.compared.filter(\.identical).count
        lines.append(report.differs ? "checkpoints differ (\(identical) tensors identical)" : "checkpoints match (\(identical) of \(report.compared.count) tensors identical)")
        return lines.joined(separator: "\n")
    }

    private func reportJSON(_ report: DiffReport) -> JSONValue {
        .object([
            JSONMember("a", .string(report.a)),
            JSONMember("b", .string(report.b)),
            JSONMember("atol", .double(atol)),
            JSONMember("rtol", .double(rtol)),
            JSONMember("differs", .bool(report.differs)),
            JSONMember("only_in_a", .strings(report.onlyInA)),
            JSONMember("only_in_b", .strings(report.onlyInB)),
            JSONMember("identical", .int(report.compared.filter(\.identical).count)),
            JSONMember("changed", .array(report.compared.filter { !$0.identical }.map { t in
                var members = [
                    JSONMember("name", .string(t.name)),
                    JSONMember("dtype_a", .string(t.dtypeA.rawValue)), JSONMember("dtype_b", .string(t.dtypeB.rawValue)),
                    JSONMember("shape_a", .ints(t.shapeA)), JSONMember("shape_b", .ints(t.shapeB)),
                ]
                if let v = t.values {
                    members += [
                        JSONMember("max_abs", .double(v.maxAbsoluteError)), JSONMember("max_rel", .double(v.maxRelativeError)),
                        JSONMember("rel_l2", .double(v.relativeL2)), JSONMember("cosine", .double(v.cosineSimilarity)),
                        JSONMember("over_tolerance", .int(v.overTolerance)), JSONMember("elements", .int(v.elements)),
                    ]
                }
                return .object(members)
            })),
            JSONMember("metadata", .array(report.metadata.map { m in
                .object([JSONMember("key", .string(m.key)), JSONMember("a", m.a.map(JSONValue.string) ?? .null),
                         JSONMember("b", m.b.map(JSONValue.string) ?? .null)])
            })),
        ])
    }
}
