import Dispatch

private struct UncheckedSendable<T>: @unchecked Sendable { let value: T }

extension Parallel {
    /// Most parts `forParts` splits into; callers size their per-part result arrays by it.
    public static let maximumParts = 8

    /// Splits `count` items into contiguous parts, one per core (at most `maximumParts`), each a
    /// multiple of `granularity`, and calls `body(part index, range)` for each concurrently; one part
    /// when there are fewer than `2 * minimumPerPart` items.
    ///
    /// Element-wise passes (casts, scans, comparisons) use it to keep every core busy without sharing
    /// state: each part writes its own slot of a partial-results array indexed by the part index.
    public static func forParts(count: Int, granularity: Int = 1, minimumPerPart: Int = 1 << 16,
                                _ body: (Int, Range<Int>) -> Void) {
        let workers = count >= 2 * minimumPerPart ? Swift.min(maximumParts, ComputeThreads.cores) : 1
        if workers == 1 {
            body(0, 0..<count)
            return
        }
        let perPart = (count / workers + granularity - 1) / granularity * granularity
        withoutActuallyEscaping(body) { escapable in
            // Safe: concurrentPerform returns only after every iteration finished, and parts are disjoint.
            let box = UncheckedSendable(value: escapable)
            DispatchQueue.concurrentPerform(iterations: workers) { i in
                let start = Swift.min(count, i * perPart)
                let end = i == workers - 1 ? count : Swift.min(count, start + perPart)
                if start < end { box.value(i, start..<end) }
            }
        }
    }

    /// Runs `first` and `second` at the same time and returns when both are done.
    public static func concurrently(_ first: () -> Void, _ second: () -> Void) {
        withoutActuallyEscaping(first) { a in
            withoutActuallyEscaping(second) { b in
                // Safe: both closures finish before concurrentPerform returns; callers give them disjoint state.
                let box = UncheckedSendable(value: (a, b))
                DispatchQueue.concurrentPerform(iterations: 2) { i in
                    if i == 0 { box.value.0() } else { box.value.1() }
                }
            }
        }
    }
}
