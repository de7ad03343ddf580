#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Every system call the formats layer makes goes through here (the swift-system habit): reads and
/// writes retry on EINTR and short counts, and failures become `TensorFormatError(.io)` naming the file.
enum Sys {
    /// The calls whose failures tests inject (`inject`), so the paths where a write, an fsync or a
    /// rename fails are exercised without a full disk or a broken device.
    enum Call: Hashable, Sendable {
        case write, fsync, rename
    }

    private static let faultLock = NSLock()
    nonisolated(unsafe) private static var faults: [Call: Int32] = [:]

    /// Makes every later `call` fail with `code` (nil clears it). For tests only.
    static func inject(_ call: Call, errno code: Int32?) {
        faultLock.lock(); defer { faultLock.unlock() }
        faults[call] = code
    }

    /// The injected failure of `call`, if any; sets errno to it.
    private static func injected(_ call: Call) -> Bool {
        faultLock.lock(); defer { faultLock.unlock() }
        guard let code = faults[call] else { return false }
        errno = code
        return true
    }

    static func errorMessage(_ code: Int32 = errno) -> String {
        String(cString: strerror(code))
    }

    static func fail(_ what: String, _ path: String, code: Int32 = errno) -> TensorFormatError {
        let rule: TensorFormatError.Code = code == ENOENT ? .notFound : .io
        return TensorFormatError(rule, "\(what): \(errorMessage(code))", file: path)
    }

    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(TensorFormatError) -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if errno != EINTR { throw fail("cannot open", path) }
        }
    }

    static func fileStatus(_ fd: Int32, _ path: String) throws(TensorFormatError) -> stat {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw fail("cannot stat", path) }
        return st
    }

    static func fileStatus(path: String) -> stat? {
        var st = stat()
        return stat(path, &st) == 0 ? st : nil
    }

    static func isDirectory(_ path: String) -> Bool {
        guard let st = fileStatus(path: path) else { return false }
        return st.st_mode & S_IFMT == S_IFDIR
    }

    static func exists(_ path: String) -> Bool { fileStatus(path: path) != nil }

    /// Reads up to `buffer.count` bytes; returns 0 only at end of input.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, _ path: String) throws(TensorFormatError) -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno != EINTR { throw fail("read failed", path) }
        }
    }

    static func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, offset: Int, _ path: String) throws(TensorFormatError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = Glibc.pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                throw fail("read failed", path)
            }
            done += n
        }
        return done
    }

    static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, _ path: String) throws(TensorFormatError) {
        var done = 0
        while done < buffer.count {
            let n = injected(.write) ? -1 : Glibc.write(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw fail("write failed", path)
            }
            done += n
        }
    }

    /// fsync(2), retried on EINTR.
    static func fsync(_ fd: Int32, _ path: String) throws(TensorFormatError) {
        while true {
            if !injected(.fsync) && Glibc.fsync(fd) == 0 { return }
            if errno != EINTR { throw fail("fsync failed", path) }
        }
    }

    /// rename(2) of `from` to `to`; errors name `to`.
    static func rename(_ from: String, _ to: String) throws(TensorFormatError) {
        guard !injected(.rename) && Glibc.rename(from, to) == 0 else {
            throw fail("cannot rename the temporary file into place", to)
        }
    }

    static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
