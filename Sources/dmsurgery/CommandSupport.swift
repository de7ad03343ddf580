import ArgumentParser
import Diffusion
import Foundation
import TensorFormats
import Training
import UNet
import Workflows
#if canImport(Glibc)
import Glibc
#endif

/// Exit statuses documented in README and the man pages; the argument parser itself uses 64 for usage.
enum ExitStatus {
    static let problemsFound = ExitCode(1)
    static let invalidInput = ExitCode(2)
}

/// The one place errors become exit statuses: a tool error is printed as its one line and exits 2, an
/// interrupted command 128 + the signal, anything else unexpected exits 2 with its text; the argument
/// parser's own errors (usage 64, `--help` whose command only throws, `ExitCode`) pass through.
func exitError(for error: Error) -> Error {
    if String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {  // usage, help, ExitCode
        // A usage error seen by one rank of an MPI job stops them all.
        if let usage = error as? ValidationError, let world = DataParallel.current, world.size > 1 {
            printError(usage.message)
            DataParallel.abortIfJoined(64)
        }
        return error
    }
    switch error {
    case let error as any ToolError:
        printError(error.oneLine)
        DataParallel.abortIfJoined(2)
        return ExitStatus.invalidInput
    case let interrupted as Interrupted:
        return ExitCode(128 + interrupted.signal)
    default:
        printError(OneLine.describe(error))
        DataParallel.abortIfJoined(2)
        return ExitStatus.invalidInput
    }
}

/// Prints an error line made by `OneLine` (already escaped).
func printError(_ message: String) {
    StandardStreams.writeError("dmsurgery: error: \(message)\n")
}

/// Opens an input with the options every command shares; `wholePipeline` opens a pipeline folder as
/// all its components (inspect, verify, diff) instead of its UNet.
func openCheckpoint(_ path: String, _ input: InputOptions, randomAccess: Bool = false, wholePipeline: Bool = false) throws -> Checkpoint {
    if wholePipeline && PipelineFolder.isPipeline(path) {
        return try Checkpoint.openPipeline(path, options: OpenOptions(variant: input.variant))
    }
    return try openCheckpoint(path, input.open, randomAccess: randomAccess)
}

/// Loads a UNet from a checkpoint, or builds one with random weights from a config.json; engine errors
/// come out as one line naming the file, the rule and the key or parameter.
func loadUNet(model: String?, config: String? = nil, input: InputOptions) throws -> UNet2D {
    let source = model ?? config ?? "-"
    do {
        if let model { return try UNet2D(checkpoint: try openCheckpoint(model, input, randomAccess: true)) }
        let text = try String(contentsOfFile: source, encoding: .utf8)
        return try UNet2D(config: try UNetConfig(json: text), randomSeed: 0)
    } catch let error as UNetError {
        throw located(error, file: source)
    }
}

func formatShape(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }

/// Left-aligned columns, two spaces apart. A column is padded to at most `maximumColumnWidth`: a longer
/// cell (one very long tensor name) runs past its column on its own row instead of widening every row.
/// Cells are escaped as error lines are (`OneLine.escaped`): a name with a newline or an ANSI escape
/// cannot break the table or drive the terminal.
func table(_ rows: [[String]]) -> String {
    guard let columns = rows.map(\.count).max() else { return "" }
    var widths = [Int](repeating: 0, count: columns)
    let counted = rows.map { row in row.map { OneLine.escaped($0) }.map { ($0, $0.count) } }
    for row in counted { for (i, cell) in row.enumerated() { widths[i] = min(max(widths[i], cell.1), maximumColumnWidth) } }
    var out = ""
    for (r, row) in counted.enumerated() {
        if r > 0 { out += "\n" }
        for (i, (cell, width)) in row.enumerated() {
            if i > 0 { out += "  " }
            out += cell
            if i < row.count - 1 { out += String(repeating: " ", count: max(0, widths[i] - width)) }
        }
    }
    return out
}

/// The widest a table column is padded to (an 80-column terminal still shows the next column).
let maximumColumnWidth = 60

/// Prints text to standard output; a failed write is an `io-error` (exit 2).
func emit(_ text: String) throws {
    try StandardStreams.writeOutput(text.hasSuffix("\n") ? text : text + "\n")
}

/// Parses `5GB`, `500MB`, `2GiB`, `1000` (bytes). Decimal units are powers of 1000, as huggingface_hub.
func parseByteSize(_ text: String) -> Int? {
    let units: [(String, Int)] = [("TIB", 1 << 40), ("GIB", 1 << 30), ("MIB", 1 << 20), ("KIB", 1 << 10),
                                  ("TB", 1_000_000_000_000), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1000), ("B", 1)]
    let upper = text.uppercased().trimmingCharacters(in: .whitespaces)
    for (suffix, factor) in units where upper.hasSuffix(suffix) {
        guard let value = Double(upper.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), value > 0,
              value * Double(factor) < Double(Int.max) else { return nil }
        let bytes = Int(value * Double(factor))
        return bytes > 0 ? bytes : nil
    }
    return Int(upper).flatMap { $0 > 0 ? $0 : nil }
}
