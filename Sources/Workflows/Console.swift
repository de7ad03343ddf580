import Foundation
import TensorFormats
import Training
#if canImport(Glibc)
import Glibc
#endif

/// One line on stderr for a person, `dmsurgery: ` first; nothing when `quiet`.
public func note(_ message: String, quiet: Bool) {
    guard !quiet, DataParallel.current?.isRoot != false else { return }
    StandardStreams.writeError("dmsurgery: \(OneLine.escaped(message))\n")
}

/// A one-line progress bar on stderr: shown only on a terminal, only after a second of work.
public final class ProgressBar {
    private let label: String
    private let total: Int
    private let enabled: Bool
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var drawn = false

    public init(_ label: String, total: Int, quiet: Bool) {
        self.label = label
        self.total = max(total, 1)
        self.enabled = !quiet && isatty(STDERR_FILENO) == 1
    }

    /// Bytes done, with the rate.
    public func update(_ done: Int) {
        draw(done) { rate in "\(formatBytes(done))/\(formatBytes(self.total)) \(formatBytes(Int(rate)))/s" }
    }

    /// Steps done (training), with `detail` (the losses).
    public func update(steps done: Int, detail: String) {
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
        StandardStreams.writeError(line)
    }

    public func finish() {
        guard drawn else { return }
        StandardStreams.writeError("\r\u{1B}[K")
    }
}

public func formatBytes(_ bytes: Int) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1000 && unit < units.count - 1 {
        value /= 1000
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: "%.2f %@", value, units[unit])
}

/// An integer with thousands separators (1,234,567).
public func formatCount(_ n: Int) -> String {
    let digits = Array(String(n.magnitude))
    var out = ""
    for (i, d) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
        out.append(d)
    }
    return n < 0 ? "-" + out : out
}

public func formatNumber(_ x: Double) -> String {
    if x.isNaN { return "nan" }
    if x.isInfinite { return x > 0 ? "inf" : "-inf" }
    if x == 0 { return "0" }
    return String(format: abs(x) >= 1e-3 && abs(x) < 1e5 ? "%.6g" : "%.3e", x)
}
