#if canImport(Glibc)
import Glibc
#endif

/// A sequential byte stream: a pipe, or a decompressor in front of one.
///
/// Checkpoints arriving on a pipe are consumed in storage order through this; formats that need to
/// seek are spooled to a temporary file instead.
public protocol ByteSource: AnyObject {
    /// Name used in messages (`-` for standard input).
    var name: String { get }
    /// Reads up to `buffer.count` bytes; 0 means end of input.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(TensorFormatError) -> Int
}

extension ByteSource {
    /// Fills `buffer` completely, or returns how many bytes came before end of input.
    public func readFully(into buffer: UnsafeMutableRawBufferPointer) throws(TensorFormatError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
            if n == 0 { break }
            done += n
        }
        return done
    }
}

/// Reads a file descriptor (standard input or an opened file).
public final class FileDescriptorSource: ByteSource {
    public let name: String
    let fd: Int32
    let ownsDescriptor: Bool

    public init(fd: Int32, name: String, ownsDescriptor: Bool = false) {
        self.fd = fd
        self.name = name
        self.ownsDescriptor = ownsDescriptor
    }

    deinit { if ownsDescriptor { Sys.close(fd) } }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(TensorFormatError) -> Int {
        try Sys.read(fd, into: buffer, name)
    }
}

/// A source that replays bytes already read (a sniffed prefix) before its underlying source.
public final class PrefixedSource: ByteSource {
    private var prefix: [UInt8]
    private var prefixPosition = 0
    private let base: ByteSource

    public init(prefix: [UInt8], base: ByteSource) {
        self.prefix = prefix
        self.base = base
    }

    public var name: String { base.name }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(TensorFormatError) -> Int {
        if prefixPosition < prefix.count {
            let n = min(buffer.count, prefix.count - prefixPosition)
            prefix.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + prefixPosition, byteCount: n) }
            prefixPosition += n
            return n
        }
        return try base.read(into: buffer)
    }
}
