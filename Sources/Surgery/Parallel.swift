import Dispatch
import Foundation

/// Worker count for element-wise passes: the machine's cores, at most `maximumWorkers`.
let maximumWorkers = 8
let workerCount: Int = max(1, min(maximumWorkers, ProcessInfo.processInfo.activeProcessorCount))

private struct UncheckedSendable<T>: @unchecked Sendable { let value: T }

/// Splits `count` items into contiguous parts, one per worker, each a multiple of `granularity`, and
/// calls `body(part index, range)` for each concurrently.
///
/// Element-wise passes (casts, scans, comparisons) use it to keep every core busy without sharing
/// state: each part writes its own slot of a partial-results array indexed by the part index.
func parallelParts(count: Int, granularity: Int = 1, minimumPerPart: Int = 1 << 16,
                   _ body: (Int, Range<Int>) -> Void) {
    let workers = count >= 2 * minimumPerPart ? workerCount : 1
    if workers == 1 {
        body(0, 0..<count)
        return
    }
    let perPart = (count / workers + granularity - 1) / granularity * granularity
    withoutActuallyEscaping(body) { escapable in
        // Safe: concurrentPerform returns only after every iteration finished, and parts are disjoint.
        let box = UncheckedSendable(value: escapable)
        DispatchQueue.concurrentPerform(iterations: workers) { i in
            let start = min(count, i * perPart)
            let end = i == workers - 1 ? count : min(count, start + perPart)
            if start < end { box.value(i, start..<end) }
        }
    }
}
