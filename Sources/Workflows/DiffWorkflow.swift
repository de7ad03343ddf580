import Surgery
import TensorFormats

/// What `diff` is told, as plain values (B is the reference for relative errors).
public struct DiffSettings: Sendable {
    public var a: String
    public var b: String
    /// Finite and non-negative.
    public var atol = 0.0
    public var rtol = 0.0
    public var ignoreDtype = false
    public var ignoreMetadata = false
    public var json = false
    /// List every changed tensor, also those within tolerance.
    public var all = false
    public var open = OpenOptions()
    public var quiet = false

    public init(a: String, b: String) {
        self.a = a
        self.b = b
    }
}

/// What `diff` found and the text it prints.
public struct DiffOutcome {
    public let report: DiffReport
    public let output: String
}

/// `diff`'s body: tensors only in one, dtype and shape changes, value errors, metadata.
public enum DiffWorkflow {
    public static func run(_ settings: DiffSettings) throws -> DiffOutcome {
        let first = try openCheckpoint(settings.a, settings.open, randomAccess: true, wholePipeline: true)
        let second = try openCheckpoint(settings.b, settings.open, randomAccess: true, wholePipeline: true)
        let options = DiffOptions(absoluteTolerance: settings.atol, relativeTolerance: settings.rtol,
                                  ignoreDType: settings.ignoreDtype, ignoreMetadata: settings.ignoreMetadata)
        let bar = ProgressBar("diff", total: first.byteCount, quiet: settings.quiet)
        let report = try Differ.diff(first, second, options: options, progress: bar.update)
        bar.finish()
        let output = settings.json ? JSONWriter.pretty(reportJSON(report, atol: settings.atol, rtol: settings.rtol))
            : text(report, atol: settings.atol, rtol: settings.rtol, all: settings.all)
        return DiffOutcome(report: report, output: output)
    }

    public static func text(_ report: DiffReport, atol: Double, rtol: Double, all: Bool) -> String {
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

    public static func reportJSON(_ report: DiffReport, atol: Double, rtol: Double) -> JSONValue {
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
