import Surgery
import TensorFormats

/// What `inspect` is told, as plain values.
public struct InspectSettings: Sendable {
    public var checkpoint: String
    public var open = OpenOptions()
    /// Depth of the module tree (dotted name components), at least 1.
    public var moduleDepth = 2
    public var json = false
    /// The per-tensor table in text output.
    public var tensorTable = true

    public init(checkpoint: String) {
        self.checkpoint = checkpoint
    }
}

/// What `inspect` found and the text it prints (JSON or the tables).
public struct InspectOutcome {
    public let report: InspectReport
    public let output: String
}

/// `inspect`'s body: headers only (a pipe is read to its end to validate it), then the report as text or JSON.
public enum InspectWorkflow {
    public static func run(_ settings: InspectSettings) throws -> InspectOutcome {
        let opened = try openCheckpoint(settings.checkpoint, settings.open, wholePipeline: true)
        if opened.isSequential {
            for entry in opened.entries { try opened.read(entry) { _ in } }
            try opened.finish()
        }
        let report = InspectReport(opened, moduleDepth: settings.moduleDepth)
        return InspectOutcome(report: report, output: settings.json ? JSONWriter.pretty(json(report)) : text(report, tensorTable: settings.tensorTable))
    }

    /// The JSON report, with an ONNX model's graph summary as `onnx_graph`.
    public static func json(_ report: InspectReport) -> JSONValue {
        guard let graph = report.checkpoint.onnxGraph, case .object(let members) = report.json else { return report.json }
        return .object(members + [JSONMember("onnx_graph", graph.json)])
    }

    public static func text(_ report: InspectReport, tensorTable: Bool = true) -> String {
        let ckpt = report.checkpoint
        var lines: [String] = []
        var summary: [[String]] = [["checkpoint", ckpt.name], ["format", ckpt.format.rawValue]]
        for file in ckpt.files {
            let size = file.size.map { formatBytes($0) } ?? "stream"
            let header = [.hdf5, .pytorch, .onnx].contains(ckpt.format) ? "" : ", header \(formatBytes(file.header.headerLength))"
            summary.append(["file", "\(file.path) (\(size)\(header))"])
        }
        for (key, value) in ckpt.details { summary.append([key, value]) }
        if let arch = report.architecture {
            summary.append(["architecture", "\(arch.name) (from \(arch.evidence))"])
            for (key, value) in arch.details { summary.append(["  " + key, value]) }
        }
        summary.append(["tensors", "\(formatCount(ckpt.entries.count)) (" + report.dtypeCounts.map { "\($0.0.rawValue) \($0.1)" }.joined(separator: ", ") + ")"])
        summary.append(["parameters", formatCount(ckpt.parameterCount)])
        summary.append(["bytes", "\(formatCount(ckpt.byteCount)) (\(formatBytes(ckpt.byteCount)))"])
        lines.append(table(summary))
        lines.append("")
        if let metadata = ckpt.metadata, !metadata.isEmpty {
            lines.append("metadata (\(metadata.entries.count) keys)")
            for entry in metadata.entries {
                let value = entry.value.count > 100 ? String(entry.value.prefix(100)).replacingOccurrences(of: "\n", with: " ") + "… (\(entry.value.utf8.count) bytes)" : entry.value
                lines.append("  \(entry.key): \(value)")
            }
        } else {
            lines.append("metadata: none")
        }
        if let graph = ckpt.onnxGraph {
            lines.append("")
            lines += graph.lines
        }
        if tensorTable {
            lines.append("")
            var rows = [["NAME", "DTYPE", "SHAPE", "BYTES", "OFFSETS"]]
            for entry in ckpt.entries {
                let offsets = "[\(entry.info.dataOffsets.lowerBound), \(entry.info.dataOffsets.upperBound))"
                rows.append([entry.name, entry.dtype.rawValue, formatShape(entry.shape), formatCount(entry.byteCount),
                             ckpt.files.count > 1 ? "\(offsets) in file \(entry.fileIndex)" : offsets])
            }
            lines.append(table(rows))
        }
        lines.append("")
        var moduleRows = [["MODULE", "PARAMETERS", "TENSORS"]]
        for node in report.modules {
            moduleRows.append([String(repeating: "  ", count: node.depth - 1) + node.path, formatCount(node.parameters), String(node.tensors)])
        }
        lines.append(table(moduleRows))
        if let unet = report.unet { lines += unetLines(unet, mask: ckpt.metadata?[MetadataKey.mask] != nil) }
        if let pixart = report.pixart { lines += pixartLines(pixart) }
        return lines.joined(separator: "\n")
    }

    /// Parameters and MACs per block; for a pruned checkpoint, each layer's kept width against the base.
    private static func unetLines(_ unet: UNetCost, mask: Bool) -> [String] {
        var lines = ["", "unet cost per block" + (unet.sampleSize.map { " at \($0)x\($0), one sample, \(unet.contextLength) context tokens" } ?? "")]
        var rows = [["BLOCK", "PARAMETERS", "MACS"]]
        for block in unet.blocks {
            rows.append([block.name, formatCount(block.parameters), block.macs.map(formatCount) ?? "-"])
        }
        let totalMACs = unet.blocks.compactMap(\.macs).reduce(0, +)
        rows.append(["total", formatCount(unet.blocks.reduce(0) { $0 + $1.parameters }), unet.sampleSize == nil ? "-" : formatCount(totalMACs)])
        lines.append(table(rows))
        guard unet.isPruned || mask else { return lines }
        lines += ["", "pruned widths (kept / base channels)"]
        var widthRows = [["LAYER", "KIND", "KEPT", "BASE", "KEPT%"]]
        for w in unet.widths {
            widthRows.append([w.layer, w.kind.rawValue, String(w.channels), String(w.baseChannels),
                              String(format: "%.0f%%", 100 * Double(w.channels) / Double(max(1, w.baseChannels)))])
        }
        lines.append(table(widthRows))
        return lines
    }

    /// Parameters, MACs and kept widths per part of a PixArt transformer.
    private static func pixartLines(_ cost: PixArtCost) -> [String] {
        var lines = ["", "\(PixArtCost.architecture) cost per block at \(cost.sampleSize)x\(cost.sampleSize) (\(cost.tokens) tokens), one sample, \(cost.captionTokens) caption tokens"]
        var rows = [["BLOCK", "PARAMETERS", "MACS", "HEADS (SELF/CROSS)", "FFN"]]
        for b in cost.blocks {
            let heads = b.selfHeads.map { "\($0)/\(b.crossHeads ?? 0)" } ?? "-"
            rows.append([b.name, formatCount(b.parameters), formatCount(b.macs), heads, b.ffnWidth.map(String.init) ?? "-"])
        }
        rows.append(["total", formatCount(cost.blocks.reduce(0) { $0 + $1.parameters }), formatCount(cost.blocks.reduce(0) { $0 + $1.macs }),
                     "base \(cost.baseHeads)", "base \(cost.baseFFNWidth)"])
        lines.append(table(rows))
        return lines
    }
}
