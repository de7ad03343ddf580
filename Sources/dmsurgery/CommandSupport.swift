import ArgumentParser
import Diffusion
import Foundation
import TensorFormats
import Training
import UNet
#if canImport(Glibc)
import Glibc
#endif

/// Exit statuses documented in README and the man pages; the argument parser itself uses 64 for usage.
enum ExitStatus {
    static let problemsFound = ExitCode(1)
    static let invalidInput = ExitCode(2)
}

/// Runs a subcommand body: installs interrupt cleanup, and turns every error into one line on stderr
/// and the documented exit status, in this one place.
func runCommand(_ body: () throws -> Void) throws {
    TemporaryFiles.installSignalCleanup()
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch let error as any ToolError {
        printError(error.oneLine)
        DataParallel.abortIfJoined(2)
        throw ExitStatus.invalidInput
    } catch let error as ValidationError {
        if let world = DataParallel.current, world.size > 1 {
            printError(error.message)
            DataParallel.abortIfJoined(64)
        }
        throw error
    } catch {
        printError("\(error)")
        DataParallel.abortIfJoined(2)
        throw ExitStatus.invalidInput
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("dmsurgery: error: \(message)\n".utf8))
}

func note(_ message: String, quiet: Bool) {
    guard !quiet, DataParallel.current?.isRoot != false else { return }
    FileHandle.standardError.write(Data("dmsurgery: \(message)\n".utf8))
}

/// Opens an input with the options every command shares.
func openCheckpoint(_ path: String, _ input: InputOptions, randomAccess: Bool = false) throws -> Checkpoint {
    try Checkpoint.open(path, options: OpenOptions(randomAccess: randomAccess, allowUnsafeHDF5: input.allowUnsafeH5, hdf5Layout: input.layout))
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

/// An engine error as a checkpoint error: config keys stay in the message, parameters become the tensor.
func located(_ error: UNetError, file: String) -> TensorFormatError {
    let rule: String
    var tensor: String?
    switch error.kind {
    case .unsupportedConfig: rule = "unsupported-config"
    case .invalidConfig: rule = "invalid-config"
    case .missingParameter: rule = "missing-parameter"; tensor = error.subject
    case .badShape: rule = "bad-shape"; tensor = error.subject
    case .unexpectedParameter: rule = "unexpected-parameter"; tensor = error.subject
    case .badInput: rule = "bad-input"; tensor = error.subject
    }
    let message = tensor == nil ? "\(error.subject): \(error.message)" : error.message
    return TensorFormatError(TensorFormatError.Code(rawValue: rule), message, file: file, tensor: tensor)
}

/// A one-line progress bar on stderr: shown only on a terminal, only after a second of work.
final class ProgressBar {
    private let label: String
    private let total: Int
    private let enabled: Bool
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var drawn = false

    init(_ label: String, total: Int, quiet: Bool) {
        self.label = label
        self.total = max(total, 1)
        self.enabled = !quiet && isatty(STDERR_FILENO) == 1
    }

    /// Bytes done, with the rate.
    func update(_ done: Int) {
        draw(done) { rate in "\(formatBytes(done))/\(formatBytes(self.total)) \(formatBytes(Int(rate)))/s" }
    }

    /// Steps done (training), with `detail` (the losses).
    func update(steps done: Int, detail: String) {
        draw(done) { _ in "\(done)/\(self.total) \(detail)" }
    }

    private func draw(_ done: Int, counts: (Double) -> String) {
        guard enabled else { return }
        let now = Date()
        guard now.timeIntervalSince(start) > 1, now.timeIntervalSince(lastDraw) > 0.1 else { return }
        lastDraw = now
        drawn = true
        let fraction = min(1, Double(done) / Double(total))
        let width = 30
        let filled = Int(fraction * Double(width))
        let rate = Double(done) / now.timeIntervalSince(start)
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let line = "\r\(label) [\(bar)] \(Int(fraction * 100))% \(counts(rate))\u{1B}[K"
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        guard drawn else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}

func formatBytes(_ bytes: Int) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1000 && unit < units.count - 1 {
        value /= 1000
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: "%.2f %@", value, units[unit])
}

func formatCount(_ n: Int) -> String {
    let digits = Array(String(n.magnitude))
    var out = ""
    for (i, d) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
        out.append(d)
    }
    return n < 0 ? "-" + out : out
}

func formatShape(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }

func formatNumber(_ x: Double) -> String {
    if x.isNaN { return "nan" }
    if x.isInfinite { return x > 0 ? "inf" : "-inf" }
    if x == 0 { return "0" }
    return String(format: abs(x) >= 1e-3 && abs(x) < 1e5 ? "%.6g" : "%.3e", x)
}

/// Left-aligned columns, two spaces apart.
func table(_ rows: [[String]]) -> String {
    guard let columns = rows.map(\.count).max() else { return "" }
    var widths = [Int](repeating: 0, count: columns)
    let counted = rows.map { row in row.map { ($0, $0.count) } }
    for row in counted { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.1) } }
    var out = ""
    for (r, row) in counted.enumerated() {
        if r > 0 { out += "\n" }
        for (i, (cell, width)) in row.enumerated() {
            if i > 0 { out += "  " }
            out += cell
            if i < row.count - 1 { out += String(repeating: " ", count: widths[i] - width) }
        }
    }
    return out
}

/// Prints text to standard output.
func emit(_ text: String) {
    FileHandle.standardOutput.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
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

/// The scheduler a model was trained with: an explicit scheduler_config.json, else the one in the model
/// folder (or the sibling `scheduler` folder of a diffusers pipeline), else diffusers' defaults.
func loadSchedulerConfig(model: String, explicit: String?) throws -> SchedulerConfig {
    if let explicit { return try SchedulerConfig(json: String(contentsOfFile: explicit, encoding: .utf8)) }
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: model, isDirectory: &isDir), isDir.boolValue {
        let base = URL(fileURLWithPath: model)
        for candidate in [base.appendingPathComponent("scheduler_config.json"),
                          base.deletingLastPathComponent().appendingPathComponent("scheduler/scheduler_config.json")]
        where FileManager.default.fileExists(atPath: candidate.path) {
            return try SchedulerConfig(json: String(contentsOf: candidate, encoding: .utf8))
        }
    }
    return SchedulerConfig()
}

/// Writes raw bytes (the PNG) through the same atomic output as checkpoints (temp file + rename, or
/// standard output for `-`).
func writeBytes(_ bytes: [UInt8], to path: String, force: Bool) throws {
    let output = try OutputFile(path: path, force: force)
    try output.write(bytes)
    try output.commit()
}
