import CLinux
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one check made before a large allocation whose size comes from a file or an option: estimate the
/// bytes (with overflow-checked products), compare them with the machine's memory, and refuse with the
/// number and the option that sets it, instead of trapping in the allocator later ("failed to allocate"
/// aborts leave the hidden temporary output behind).
public enum MemoryBudget {
    /// The bytes an allocation may take: the smallest of physical memory (`sysconf`), what the address
    /// space limit (`ulimit -v`, RLIMIT_AS) leaves above the address space already in use, and what the
    /// cgroup's `memory.max` leaves above the cgroup's anonymous memory (a container's limit; its page
    /// cache is reclaimable, so `memory.current` would refuse what fits); or
    /// `DMSURGERY_MEMORY_LIMIT` bytes when set (tests use it to exercise the refusal without a
    /// machine-sized input). The allocator aborts past the real limit, so physical memory alone would
    /// let a refusable input end in SIGABRT with its temporary output left behind.
    public static var limit: Int {
        if let text = getenv("DMSURGERY_MEMORY_LIMIT"), let value = Int(String(cString: text)), value > 0 { return value }
        var limits: [Int] = []
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        if pages > 0, size > 0 { limits.append(pages.multipliedReportingOverflow(by: size).overflow ? Int.max : pages * size) }
        let addressSpace = dms_address_space_limit()
        if addressSpace >= 0 {
            let used = (procNumbers("/proc/self/statm").first ?? 0) * max(size, 1)
            limits.append(max(0, Int(clamping: addressSpace) - used))
        }
        if let cgroupMax = procNumbers("/sys/fs/cgroup/memory.max").first {
            limits.append(max(0, cgroupMax - statValue("/sys/fs/cgroup/memory.stat", "anon")))
        } else if let v1 = procNumbers("/sys/fs/cgroup/memory/memory.limit_in_bytes").first, v1 < 1 << 60 {
            limits.append(max(0, v1 - statValue("/sys/fs/cgroup/memory/memory.stat", "total_rss")))
        }
        return limits.min() ?? Int.max
    }

    /// The decimal numbers of a small kernel file (`/proc`, `/sys`: size 0 until read, so not mapped);
    /// empty when it is absent or says `max`.
    static func procNumbers(_ path: String) -> [Int] {
        kernelText(path).split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int($0) }
    }

    /// The value of `key` in a cgroup `memory.stat` file (`key value` lines), 0 when absent.
    static func statValue(_ path: String, _ key: String) -> Int {
        for line in kernelText(path).split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == key, let value = Int(parts[1]) { return value }
        }
        return 0
    }

    /// The first 8 KiB of a kernel file, read with read(2); empty when it cannot be read.
    private static func kernelText(_ path: String) -> String {
        guard let fd = try? Sys.open(path, O_RDONLY) else { return "" }
        defer { Sys.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 8192)
        var count = 0
        while count < buffer.count {
            let n = (try? buffer.withUnsafeMutableBytes { (raw) throws(TensorFormatError) in
                try Sys.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: raw[count...]), path)
            }) ?? 0
            if n <= 0 { break }
            count += n
        }
        return String(decoding: buffer.prefix(count), as: UTF8.self)
    }

    /// Keras' bomb rule, for every input whose declared size can far exceed what it stores (an HDF5
    /// dataset, a pickle view with stride 0 over one element): 4 GiB or more declared and over 1000x
    /// the stored bytes.
    public static let bombFloorBytes = 1 << 32
    public static let maximumExpansion = 1000

    /// True when `declared` bytes backed by `stored` bytes break the bomb rule.
    public static func isBomb(declared: Int, stored: Int) -> Bool {
        let (limit, overflow) = stored.multipliedReportingOverflow(by: maximumExpansion)
        return declared >= bombFloorBytes && !overflow && declared > limit
    }

    /// The product of `factors`, or nil when it overflows `Int` (or a factor is negative). A zero factor
    /// makes it zero whatever the others are.
    public static func product(_ factors: [Int]) -> Int? {
        guard factors.allSatisfy({ $0 >= 0 }) else { return nil }
        if factors.contains(0) { return 0 }
        var total = 1
        for f in factors {
            let (p, overflow) = total.multipliedReportingOverflow(by: f)
            if overflow { return nil }
            total = p
        }
        return total
    }

    /// The sum of `terms`, or nil when one is nil or the sum overflows.
    public static func sum(_ terms: [Int?]) -> Int? {
        var total = 0
        for t in terms {
            guard let t else { return nil }
            let (s, overflow) = total.addingReportingOverflow(t)
            if overflow { return nil }
            total = s
        }
        return total
    }

    /// Throws `too-large` (exit 2) unless `bytes` (nil: beyond `Int`) fits in `limit`. `what` names the
    /// allocation, `option` what the user can change to shrink it ("--batch", "block_out_channels").
    public static func check(_ bytes: Int?, for what: String, option: String, file: String? = nil) throws(TensorFormatError) {
        let limit = limit
        if let bytes, bytes <= limit { return }
        let amount = bytes.map { "\(describe($0))" } ?? "more than 2^63 bytes"
        throw TensorFormatError(.tooLarge, "\(what) needs \(amount), more than the \(describe(limit)) of memory available; lower \(option)", file: file)
    }

    /// Bytes in binary units with one decimal ("1.5 GiB").
    public static func describe(_ bytes: Int) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = Double(bytes), unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        if unit == 0 { return "\(bytes) bytes" }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }
}

extension ErrorCode {
    /// An input or option implies an allocation beyond the machine's memory (formats/cli.md).
    public static let tooLarge = ErrorCode(rawValue: "too-large")
}
