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
/// file, and no other module calls C or `FileManager` for them. Small inputs are read whole by
/// `MappedFile.contents(of:)`, folders made by `OutputFile.createFolder`, large data goes through
/// `Checkpoint`, `MappedFile` and `OutputFile`.
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

    /// A folder's entry names, sorted by their bytes (hidden ones included).
    public static func list(_ folder: String) throws(TensorFormatError) -> [String] {
        do { return try FileManager.default.contentsOfDirectory(atPath: folder).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) } } catch {
            throw TensorFormatError(.io, "cannot list the folder", file: folder)
        }
    }

    /// Ignores a signal for the rest of the process (its default action would end it).
    public static func ignore(signal number: Int32) { Sys.ignore(signal: number) }
}
