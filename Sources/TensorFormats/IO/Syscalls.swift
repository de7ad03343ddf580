#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import SystemPackage

/// Every system call the formats layer makes goes through here. Opening, reading and writing use
/// apple/swift-system's `FileDescriptor` (EINTR retries, typed `Errno`); fsync and rename, which it does
/// not wrap, retry here the same way. Short counts are completed, and failures become
/// `TensorFormatError(.io)` (`not-found` for ENOENT) naming the file.
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

    static func fail(_ what: String, _ path: String, _ error: Errno) -> TensorFormatError {
        fail(what, path, code: error.rawValue)
    }

    /// open(2) with `flags` (access mode and options, as for the C call) and close-on-exec.
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(TensorFormatError) -> Int32 {
        do {
            let fd = try FileDescriptor.open(FilePath(path), FileDescriptor.AccessMode(rawValue: flags & O_ACCMODE),
                                             options: FileDescriptor.OpenOptions(rawValue: (flags & ~O_ACCMODE) | O_CLOEXEC),
                                             permissions: FilePermissions(rawValue: mode))
            return fd.rawValue
        } catch {
            throw fail("cannot open", path, error as? Errno ?? Errno(rawValue: EIO))
        }
    }

    /// Opens an input that must be a regular file, without blocking: open(2) of a FIFO for reading
    /// waits for a writer, so a FIFO given as an input would hang before any check could refuse it.
    /// Anything but a regular file is refused naming what it is; the descriptor returned blocks again.
    static func openRegularFile(_ path: String) throws(TensorFormatError) -> Int32 {
        let fd = try open(path, O_RDONLY | O_NONBLOCK)
        let st: stat
        do { st = try fileStatus(fd, path) } catch { close(fd); throw error }
        guard st.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw TensorFormatError(.io, "not a regular file (\(kind(st.st_mode))); inputs are read from files", file: path)
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return fd
    }

    /// What a non-regular file is, for messages.
    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: return "a FIFO"
        case S_IFDIR: return "a directory"
        case S_IFCHR, S_IFBLK: return "a device"
        case S_IFSOCK: return "a socket"
        default: return "not a file"
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
        do { return try FileDescriptor(rawValue: fd).read(into: buffer) } catch {
            throw fail("read failed", path, error as? Errno ?? Errno(rawValue: EIO))
        }
    }

    /// Reads `buffer.count` bytes at `offset`, fewer only at end of file.
    static func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, offset: Int, _ path: String) throws(TensorFormatError) -> Int {
        var done = 0
        while done < buffer.count {
            let n: Int
            do {
                n = try FileDescriptor(rawValue: fd).read(fromAbsoluteOffset: Int64(offset + done),
                                                          into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
            } catch {
                throw fail("read failed", path, error as? Errno ?? Errno(rawValue: EIO))
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Writes all of `buffer`.
    static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, _ path: String) throws(TensorFormatError) {
        var done = 0
        while done < buffer.count {
            do {
                if injected(.write) { throw Errno(rawValue: errno) }
                done += try FileDescriptor(rawValue: fd).write(UnsafeRawBufferPointer(rebasing: buffer[done...]))
            } catch {
                throw fail("write failed", path, error as? Errno ?? Errno(rawValue: EIO))
            }
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

    static func close(_ fd: Int32) { try? FileDescriptor(rawValue: fd).close() }

    static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

    /// `signal(n, SIG_IGN)`.
    static func ignore(signal number: Int32) { _ = signal(number, SIG_IGN) }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
