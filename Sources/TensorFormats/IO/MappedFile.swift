import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// A read-only memory map of a whole file.
///
/// Tensor-by-tensor work releases each range once done (`release`), so the pages it touched leave the
/// process's resident set and streaming a multi-GB checkpoint keeps memory bounded.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    private let fd: Int32
    private let base: UnsafeMutableRawPointer?

    /// Maps `path`; `descriptor` maps an already open file (standard input redirected from a file).
    public init(path: String, descriptor: Int32? = nil) throws(TensorFormatError) {
        self.path = path
        let fd: Int32
        if let descriptor {
            fd = dup(descriptor)
            guard fd >= 0 else { throw Sys.fail("cannot open", path) }
        } else {
            fd = try Sys.openRegularFile(path)
        }
        let st: stat
        do { st = try Sys.fileStatus(fd, path) } catch { Sys.close(fd); throw error }
        guard st.st_mode & S_IFMT == S_IFREG else {
            Sys.close(fd)
            throw TensorFormatError(.io, "not a regular file (\(Sys.kind(st.st_mode))); inputs are read from files", file: path)
        }
        self.fd = fd
        self.size = Int(st.st_size)
        if size > 0 {
            let pointer = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
            guard let pointer, pointer != MAP_FAILED else {
                let code = errno
                Sys.close(fd)
                throw Sys.fail("cannot map", path, code: code)
            }
            self.base = pointer
        } else {
            self.base = nil
        }
    }

    /// A whole small input (a config, a mask, a manifest, an index, a prompt list): every such read
    /// goes through here, so a FIFO, device or folder is refused at once instead of blocking, and a
    /// failure names the file with the system's reason.
    public static func contents(of path: String) throws(TensorFormatError) -> [UInt8] {
        let map = try MappedFile(path: path)
        return Array(map.bytes)
    }

    /// `contents(of:)` as UTF-8 text; `what` names the file's role in the refusal ("the mask").
    public static func text(of path: String, what: String = "the file") throws(TensorFormatError) -> String {
        guard let text = String(validating: try contents(of: path), as: UTF8.self) else {
            throw TensorFormatError(.io, "\(what) is not UTF-8 text", file: path)
        }
        return text
    }

    deinit {
        if let base { munmap(base, size) }
        Sys.close(fd)
    }

    /// The whole file. Valid while this object lives.
    public var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base, count: size)
    }

    public func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[range])
    }

    /// Tells the kernel the range will be read in order soon.
    public func willRead(_ range: Range<Int>) {
        advise(range, MADV_WILLNEED)
    }

    /// Drops the range from this process's resident set (the page cache keeps it).
    public func release(_ range: Range<Int>) {
        advise(range, MADV_DONTNEED)
    }

    private func advise(_ range: Range<Int>, _ advice: Int32) {
        guard let base, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = range.lowerBound / page * page
        let end = min(size, range.upperBound)
        guard end > start else { return }
        _ = madvise(base + start, end - start, advice)
    }
}
