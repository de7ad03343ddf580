#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Foundation

/// The one temporary-file maker for data that must be seekable but has no file of its own (a pipe, a
/// decompressor, HDF5 built for standard output): a file in `$TMPDIR` with no name (O_TMPFILE), so
/// nothing is left behind whatever ends the process, SIGKILL included; its space is freed when the last
/// descriptor closes. On a file system without O_TMPFILE it falls back to a named file registered for
/// signal cleanup and removed by `close()` or `withName`.
///
/// libhdf5 opens files only by name: `withName` links the file under a temporary name for the length
/// of one open call (registered for signal cleanup) and removes the name again.
/// Outputs that end up under a name are `OutputFile`'s business (temporary name beside the target,
/// fsync, rename); this type is only for scratch data.
public struct SpoolFile: Sendable {
    /// Read-write descriptor; owned by the caller (`close()`).
    public let fd: Int32
    /// The name of a fallback file (no O_TMPFILE), removed by `withName` or `close()`.
    private let fallbackName: String?

    private static var directory: String {
        ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    }

    /// Creates an empty file with no name.
    public static func create() throws(TensorFormatError) -> SpoolFile {
        let directory = directory
        let flags = dms_o_tmpfile()
        if flags != 0 {
            let fd = Glibc.open(directory, flags | O_RDWR | O_CLOEXEC, 0o600)
            if fd >= 0 { return SpoolFile(fd: fd, fallbackName: nil) }
            guard errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL else {
                throw Sys.fail("cannot create a spool file", directory)
            }
        }
        var template = Array("\(directory)/dmsurgery-spool-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw Sys.fail("cannot create a spool file", directory) }
        let name = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        TemporaryFiles.register(name)
        return SpoolFile(fd: fd, fallbackName: name)
    }

    /// A file holding everything `source` yields.
    public static func filled(from source: ByteSource) throws(TensorFormatError) -> SpoolFile {
        let spool = try create()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 << 20, alignment: 64)
        defer { buffer.deallocate() }
        do {
            while true {
                let n = try source.read(into: buffer)
                if n == 0 { break }
                try Sys.writeAll(spool.fd, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), source.name)
            }
        } catch {
            spool.close()
            throw error
        }
        return spool
    }

    /// Gives the file a temporary name in `$TMPDIR` for the length of `body` (a library's open call),
    /// then removes the name; the library's own descriptor keeps reaching the same file.
    public func withName<T>(_ body: (String) throws(TensorFormatError) -> T) throws(TensorFormatError) -> T {
        let name: String
        if let fallbackName {
            name = fallbackName
        } else {
            name = "\(Self.directory)/dmsurgery-spool-\(String(UInt64.random(in: 0...UInt64.max), radix: 36))"
            guard linkat(AT_FDCWD, "/proc/self/fd/\(fd)", AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0 else {
                throw Sys.fail("cannot name the spool file", name)
            }
            TemporaryFiles.register(name)
        }
        defer {
            unlink(name)
            TemporaryFiles.unregister(name)
        }
        return try body(name)
    }

    /// Copies the whole file, from its start, into `output`.
    public func copy(to output: OutputFile) throws(TensorFormatError) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 << 20, alignment: 64)
        defer { buffer.deallocate() }
        var offset = 0
        while true {
            let n = try Sys.pread(fd, into: buffer, offset: offset, output.path)
            if n == 0 { break }
            try output.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            offset += n
        }
    }

    public func close() {
        Sys.close(fd)
        if let fallbackName {
            unlink(fallbackName)
            TemporaryFiles.unregister(fallbackName)
        }
    }
}
