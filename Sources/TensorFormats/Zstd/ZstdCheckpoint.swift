#if canImport(Glibc)
import Glibc
#endif

/// Recognising inputs by their first bytes: zstd frames are decompressed transparently (file or
/// stdin), HDF5 files go to the HDF5 reader, anything else is safetensors.
extension Checkpoint {
    /// What an input's first bytes say it is.
    enum Signature {
        case zstd, hdf5, other

        init<C: Collection>(_ prefix: C) where C.Element == UInt8 {
            if Zstd.hasMagic(prefix) { self = .zstd } else if HDF5Reader.hasSignature(prefix) { self = .hdf5 } else { self = .other }
        }
    }

    /// The signature of a file on disk, from its first 8 bytes (`.other` when shorter or unreadable).
    static func signature(ofFile path: String) -> Signature {
        guard let fd = try? Sys.open(path, O_RDONLY | O_NONBLOCK) else { return .other }
        defer { Sys.close(fd) }
        return signature(ofDescriptor: fd, path: path)
    }

    static func signature(ofDescriptor fd: Int32, path: String) -> Signature {
        var prefix = [UInt8](repeating: 0, count: 8)
        let count = (try? prefix.withUnsafeMutableBytes { (raw) throws(TensorFormatError) in try Sys.pread(fd, into: raw, offset: 0, path) }) ?? 0
        return Signature(prefix.prefix(count))
    }

    /// Opens a stream whatever it holds: zstd (decompressed as it is read, memory bounded by the
    /// decoder's window), HDF5 (spooled to a temporary file) or safetensors (read in order, or
    /// spooled when `options.randomAccess`).
    public static func openSniffing(_ source: ByteSource, options: OpenOptions = OpenOptions()) throws -> Checkpoint {
        var prefix = [UInt8](repeating: 0, count: 8)
        let count = try prefix.withUnsafeMutableBytes { (raw) throws(TensorFormatError) in try source.readFully(into: raw) }
        prefix.removeLast(8 - count)
        let replay = PrefixedSource(prefix: prefix, base: source)
        if hasGGUFMagic(prefix) {
            let spooled = try spool(replay)
            defer { Sys.close(spooled.fd) }
            return try openGGUF(spooled.path, name: source.name, descriptor: spooled.fd)
        }
        switch Signature(prefix) {
        case .zstd:
            return try openSniffing(try ZstdDecompressingSource(replay), options: options)
        case .hdf5:
            return try openHDF5(replay, options: options)
        case .other:
            if options.randomAccess || SniffedFormat(prefix: prefix).needsFile {
                let spooled = try spool(replay)
                defer { Sys.close(spooled.fd) }
                return try openFile(spooled.path, name: source.name, descriptor: spooled.fd, options: options)
            }
            return try openStream(replay, name: source.name)
        }
    }

    /// A file that starts with the zstd magic number, opened through a decompressor.
    static func openZstdFile(_ path: String, options: OpenOptions) throws -> Checkpoint {
        let fd = try Sys.openRegularFile(path)
        return try openSniffing(FileDescriptorSource(fd: fd, name: path, ownsDescriptor: true), options: options)
    }
}
