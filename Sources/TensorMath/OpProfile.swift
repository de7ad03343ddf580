import Foundation

/// Opt-in wall-clock time per operation (`DMSURGERY_PROFILE=1`), printed as a table on standard error
/// when the process exits: where an SD-size training iteration spends its time (BENCHMARKS.md, issue
/// 26 §3), without perf. An operation is timed only when it is the outermost timed call on the
/// calling thread, so nested kernels are counted once, in the operation that called them; calls made
/// from worker threads are not timed (the engine enters its operations from one thread). Off, each
/// timed call costs one load of a constant and a branch.
public enum OpProfile {
    /// Whether timing is on: read once from the environment.
    public static let enabled: Bool = {
        guard let value = ProcessInfo.processInfo.environment["DMSURGERY_PROFILE"], value != "0", !value.isEmpty
        else { return false }
        atexit { OpProfile.printTable() }
        return true
    }()

    /// A started measurement: the start time, or nil when this call is not timed.
    public struct Mark {
        fileprivate let start: UInt64?
    }

    private struct Row {
        var calls = 0
        var nanoseconds: UInt64 = 0
    }

    private nonisolated(unsafe) static var rows: [String: Row] = [:]
    private nonisolated(unsafe) static var depth = 0
    private static let lock = NSLock()

    /// Starts timing an operation; pair it with `end(_:_:)` (`defer`).
    @inline(__always)
    public static func begin() -> Mark {
        guard enabled, Thread.isMainThread else { return Mark(start: nil) }
        lock.lock()
        defer { lock.unlock() }
        depth += 1
        return Mark(start: depth == 1 ? DispatchTime.now().uptimeNanoseconds : nil)
    }

    /// Ends the measurement `mark` under `name`.
    @inline(__always)
    public static func end(_ name: @autoclosure () -> String, _ mark: Mark) {
        guard enabled, Thread.isMainThread else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        lock.lock()
        defer { lock.unlock() }
        depth -= 1
        guard let start = mark.start else { return }
        rows[name(), default: Row()].calls += 1
        rows[name(), default: Row()].nanoseconds += now - start
    }

    /// Times `body` under `name`.
    @inline(__always)
    public static func measure<T>(_ name: @autoclosure () -> String, _ body: () throws -> T) rethrows -> T {
        let mark = begin()
        defer { end(name(), mark) }
        return try body()
    }

    /// The table: one line per operation, by time, with its share of the timed total.
    static func printTable() {
        lock.lock()
        let sorted = rows.sorted { $0.value.nanoseconds > $1.value.nanoseconds }
        lock.unlock()
        let total = sorted.reduce(0) { $0 + $1.value.nanoseconds }
        var text = "DMSURGERY_PROFILE: wall time of the outermost timed operations (main thread)\n"
        text += "operation".padding(toLength: 34, withPad: " ", startingAt: 0) + "      calls      seconds   share\n"
        for (name, row) in sorted {
            let seconds = Double(row.nanoseconds) / 1e9
            let share = total == 0 ? 0 : 100 * Double(row.nanoseconds) / Double(total)
            text += name.padding(toLength: 34, withPad: " ", startingAt: 0)
                + String(format: " %10d %12.3f %6.1f%%\n", row.calls, seconds, share)
        }
        text += "timed total".padding(toLength: 34, withPad: " ", startingAt: 0)
            + String(repeating: " ", count: 11) + String(format: " %12.3f\n", Double(total) / 1e9)
        FileHandle.standardError.write(text.data(using: .utf8)!)
    }
}
