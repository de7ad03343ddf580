#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The file-system questions and small reads the modules above the formats layer ask, answered through
/// `Sys` (the one place with system calls), so that every caller gets the same typed errors naming the
/// file, and no other module calls C or `FileManager` for them. Large data always goes through
/// `Checkpoint`, `MappedFile` and `OutputFile` instead.
public enum Files {
    /// The canonical path (symlinks resolved), nil when it does not exist.
    public static func realPath(_ path: String) -> String? { Sys.realPath(path) }

    public static func exists(_ path: String) -> Bool { Sys.exists(path) }

    /// True for a directory, or a symlink to one.
    public static func isDirectory(_ path: String) -> Bool { Sys.isDirectory(path) }

    /// True for a regular file, or a symlink to one (FIFOs, devices and folders are not).
    public static func isRegularFile(_ path: String) -> Bool {
        guard let st = Sys.fileStatus(path: path) else { return false }
        return st.st_mode & S_IFMT == S_IFREG
    }

    /// True when an open descriptor is a regular file (a pipe is read once, as it comes).
    public static func isRegularFile(descriptor fd: Int32) -> Bool {
        guard let st = try? Sys.fileStatus(fd, "<descriptor \(fd)>") else { return false }
        return st.st_mode & S_IFMT == S_IFREG
    }

    /// Creates a folder and its missing parents (`mkdir -p`); an existing folder is fine, an existing
    /// file in the way is an `io-error` naming it.
    public static func makeDirectory(_ path: String) throws(TensorFormatError) {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            var blocker = URL(fileURLWithPath: path).standardizedFileURL
            while blocker.path != "/", !Sys.exists(blocker.path) { blocker.deleteLastPathComponent() }
            if !Sys.isDirectory(blocker.path) {
                throw TensorFormatError(.io, "cannot create the folder: \(blocker.path) is a file, not a folder", file: path)
            }
            throw TensorFormatError(.io, "cannot create the folder: \(Sys.errorMessage())", file: path)
        }
    }

    /// A folder's entry names, sorted by their bytes (hidden ones included).
    public static func list(_ folder: String) throws(TensorFormatError) -> [String] {
        do { return try FileManager.default.contentsOfDirectory(atPath: folder).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) } } catch {
            throw TensorFormatError(.io, "cannot list the folder", file: folder)
        }
    }

    /// A small regular file's bytes (configs, tokenizer files): refused past `limit` bytes, and a FIFO or
    /// device is refused rather than waited on.
    public static func contents(_ path: String, limit: Int) throws(TensorFormatError) -> [UInt8] {
        let fd = try Sys.open(path, O_RDONLY | O_NONBLOCK)
        defer { Sys.close(fd) }
        let st = try Sys.fileStatus(fd, path)
        guard st.st_mode & S_IFMT == S_IFREG else { throw TensorFormatError(.io, "not a regular file", file: path) }
        guard Int(st.st_size) <= limit else {
            throw TensorFormatError(.tooLarge, "\(st.st_size) bytes, more than the \(limit) such a file may have", file: path)
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(Int(st.st_size), 1), alignment: 1)
        defer { buffer.deallocate() }
        var filled = 0
        while filled < Int(st.st_size) {
            let n = try Sys.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<Int(st.st_size)]), path)
            if n == 0 { break }
            filled += n
        }
        return Array(buffer[..<filled])
    }

    /// Ignores a signal for the rest of the process (its default action would end it).
    public static func ignore(signal number: Int32) { Sys.ignore(signal: number) }
}
