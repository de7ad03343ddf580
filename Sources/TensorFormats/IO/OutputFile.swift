#if canImport(Glibc)
import Glibc
#endif
import CLazy
import CLinux
import Dispatch
import Foundation

/// Files that exist only until a write commits: removed on failure, SIGINT, SIGTERM or SIGHUP,
/// so that no partial output or stray spool file is left behind.
public enum TemporaryFiles {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var paths: Set<String> = []
    /// Temporary folders (a depth-pruned student staged beside OUT), removed with their contents.
    nonisolated(unsafe) private static var folders: Set<String> = []
    nonisolated(unsafe) private static var signalSources: [DispatchSourceSignal] = []

    static func register(_ path: String) {
        _ = lazyLibraryCleanup
        lock.lock(); defer { lock.unlock() }
        paths.insert(path)
    }

    /// A library loaded on first use (CLazy: libhdf5, libzstd, libpng, OpenBLAS) that turns out to be
    /// missing ends the process from C with one error line; these files are removed first.
    private static let lazyLibraryCleanup: Void = dms_lazy_set_cleanup { TemporaryFiles.removeAll() }

    static func unregister(_ path: String) {
        lock.lock(); defer { lock.unlock() }
        paths.remove(path)
    }

    /// Registers a temporary folder: removed with everything in it on failure or a signal, unless
    /// `removeFolder` took it away first.
    public static func registerFolder(_ path: String) {
        _ = lazyLibraryCleanup
        lock.lock(); defer { lock.unlock() }
        folders.insert(path)
    }

    /// Removes a registered temporary folder and its contents now.
    public static func removeFolder(_ path: String) {
        lock.lock(); defer { lock.unlock() }
        try? FileManager.default.removeItem(atPath: path)
        folders.remove(path)
    }

    /// Removes every registered file and folder now.
    public static func removeAll() {
        lock.lock(); defer { lock.unlock() }
        for path in paths { unlink(path) }
        paths.removeAll()
        for folder in folders { try? FileManager.default.removeItem(atPath: folder) }
        folders.removeAll()
    }

    nonisolated(unsafe) private static var signalHandler: (@Sendable (Int32) -> Bool)?
    /// How many `holdingSignals` bodies are running, and the first signal that arrived meanwhile.
    nonisolated(unsafe) private static var holds = 0
    nonisolated(unsafe) private static var heldSignal: Int32?

    /// Runs `body` (the renames that publish a multi-file output) with SIGINT, SIGTERM and SIGHUP held:
    /// a signal that arrives meanwhile is honoured once the body is done, so an interrupted run leaves
    /// the previous set of files or the new one, never new weights beside an old config.json.
    public static func holdingSignals<T>(_ body: () throws(TensorFormatError) -> T) throws(TensorFormatError) -> T {
        lock.lock()
        holds += 1
        lock.unlock()
        defer {
            lock.lock()
            holds -= 1
            let pending = holds == 0 ? heldSignal : nil
            if pending != nil { heldSignal = nil }
            lock.unlock()
            if let pending { honour(pending) }
        }
        return try body()
    }

    /// What a signal does once it may act: the caller's handler first, then cleanup and exit.
    private static func honour(_ sig: Int32) {
        lock.lock()
        let handler = signalHandler
        lock.unlock()
        if let handler, handler(sig) { return }
        removeAll()
        _exit(128 + sig)
    }

    /// Routes SIGINT, SIGTERM and SIGHUP through a handler that removes temporary files and exits
    /// with 128 + the signal number, the shell convention. `onSignal` runs first (a training loop
    /// uses it to write a resumable checkpoint); returning true there means it will exit by itself.
    /// Installing again only replaces `onSignal` when one is given.
    public static func installSignalCleanup(onSignal: (@Sendable (Int32) -> Bool)? = nil) {
        lock.lock(); defer { lock.unlock() }
        if let onSignal { signalHandler = onSignal }
        guard signalSources.isEmpty else { return }
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                lock.lock()
                if holds > 0 {
                    if heldSignal == nil { heldSignal = sig }
                    lock.unlock()
                    return
                }
                lock.unlock()
                honour(sig)
            }
            source.resume()
            signalSources.append(source)
        }
    }
}

/// Where binary output goes: a file written atomically, or standard output.
///
/// A file is written to a temporary name beside the target, fsynced, then renamed, so a reader never
/// sees a partial checkpoint and a failure or interrupt leaves the previous file (or none) in place.
public final class OutputFile {
    public let path: String
    private let fd: Int32
    /// The temporary name a regular file is written under until `commit` renames it (nil for streams):
    /// a library that only writes files by name (libhdf5) writes here.
    public let temporaryPath: String?
    /// Set for an existing device or FIFO opened in place (closed at the end; never renamed over).
    private let ownsStream: Bool
    private var committed = false
    public private(set) var bytesWritten = 0
    /// Start of the range whose writeback was started but not yet waited for (files only).
    private var flushedUpTo = 0
    /// Writeback is started every this many bytes, so the final fsync has little left to do and dirty
    /// pages stay bounded (the sync_file_range streaming-write pattern).
    private static let writebackWindow = 64 << 20

    /// True for standard output and devices written in place: nothing to rename, nothing to take back.
    public var isStream: Bool { temporaryPath == nil }
    /// zstd compression of everything written (`--compress zstd`, `.zst`): set before the first write.
    public var zstd: ZstdEncoder?

    /// Opens `path` for writing (`-` is standard output, refused when it is a terminal unless `force`).
    /// An existing path that is not a regular file (`/dev/null`, a FIFO, `/dev/stdout`) is written in
    /// place like a stream: renaming a temporary file over it would replace the device node itself.
    public init(path: String, force: Bool = false) throws(TensorFormatError) {
        self.path = path
        if path == "-" {
            if !force && Sys.isTerminal(STDOUT_FILENO) {
                throw TensorFormatError(.terminalOutput, "refusing to write binary data to a terminal; redirect it or pass --force", file: "-")
            }
            fd = STDOUT_FILENO
            temporaryPath = nil
            ownsStream = false
            return
        }
        try InputSet.declared.refuse(path, option: "output")
        if let st = Sys.fileStatus(path: path), st.st_mode & S_IFMT != S_IFREG, st.st_mode & S_IFMT != S_IFDIR {
            let descriptor = Glibc.open(path, O_WRONLY | O_CLOEXEC)
            guard descriptor >= 0 else { throw Sys.fail("cannot open for writing", path) }
            if !force && Sys.isTerminal(descriptor) {
                Sys.close(descriptor)
                throw TensorFormatError(.terminalOutput, "refusing to write binary data to a terminal; redirect it or pass --force", file: path)
            }
            fd = descriptor
            temporaryPath = nil
            ownsStream = true
            return
        }
        ownsStream = false
        let directory = (path as NSString).deletingLastPathComponent
        let base = (path as NSString).lastPathComponent
        if Sys.isDirectory(path) {
            throw TensorFormatError(.io, "is a directory", file: path)
        }
        var candidate = ""
        var descriptor: Int32 = -1
        for _ in 0..<16 {
            let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
            candidate = (directory.isEmpty ? "" : directory + "/") + ".\(base).\(suffix).tmp.dmsurgery"
            descriptor = Glibc.open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if descriptor >= 0 || errno != EEXIST { break }
        }
        guard descriptor >= 0 else { throw Sys.fail("cannot create a temporary file beside the output", path) }
        fd = descriptor
        temporaryPath = candidate
        TemporaryFiles.register(candidate)
    }

    deinit {
        if !committed { discard() }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(TensorFormatError) {
        guard !bytes.isEmpty else { return }
        if let zstd {
            try zstd.compress(bytes) { (piece) throws(TensorFormatError) in try Sys.writeAll(fd, piece, path) }
        } else {
            try Sys.writeAll(fd, bytes, path)
        }
        bytesWritten += bytes.count
        if temporaryPath != nil && bytesWritten - flushedUpTo >= 2 * OutputFile.writebackWindow {
            startWriteback()
        }
    }

    /// Starts writeback of the newest window, waits for the one before it (usually long done) and drops
    /// it from the page cache: a multi-GB output then neither hits dirty-page throttling nor leaves a
    /// long fsync at the end. Advisory only; errors surface at fsync.
    private func startWriteback() {
        let window = OutputFile.writebackWindow
        let newest = flushedUpTo + window
        _ = dms_sync_file_range(fd, Int64(newest), Int64(window), DMS_SYNC_FILE_RANGE_WRITE)
        _ = dms_sync_file_range(fd, Int64(flushedUpTo), Int64(window),
                                DMS_SYNC_FILE_RANGE_WAIT_BEFORE | DMS_SYNC_FILE_RANGE_WRITE | DMS_SYNC_FILE_RANGE_WAIT_AFTER)
        _ = posix_fadvise(fd, off_t(flushedUpTo), off_t(window), POSIX_FADV_DONTNEED)
        flushedUpTo = newest
    }

    public func write(_ bytes: [UInt8]) throws(TensorFormatError) {
        let result: Result<Void, TensorFormatError> = bytes.withUnsafeBytes { raw in
            Result { () throws(TensorFormatError) in try write(raw) }
        }
        try result.get()
    }

    /// Makes the output durable and visible under its final name.
    public func commit() throws(TensorFormatError) {
        guard !committed else { return }
        if let zstd {
            try zstd.finish { (piece) throws(TensorFormatError) in try Sys.writeAll(fd, piece, path) }
            self.zstd = nil
        }
        guard let temporaryPath else {
            committed = true
            if ownsStream { Sys.close(fd) }
            return
        }
        try Sys.fsync(fd, path)
        try Sys.rename(temporaryPath, path)
        Sys.close(fd)
        TemporaryFiles.unregister(temporaryPath)
        committed = true
        let directory = (path as NSString).deletingLastPathComponent
        let dirfd = Glibc.open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirfd >= 0 {
            try? Sys.fsync(dirfd, directory)
            Sys.close(dirfd)
        }
    }

    /// Commits several outputs as one: each is made durable first, then all are renamed with signals
    /// held (`TemporaryFiles.holdingSignals`), so a folder written as several files (weights and
    /// config.json, shards and their index, a pruned checkpoint and its mask) is replaced whole.
    public static func commitTogether(_ outputs: [OutputFile]) throws(TensorFormatError) {
        for output in outputs { try output.makeDurable() }
        try TemporaryFiles.holdingSignals { () throws(TensorFormatError) in
            for output in outputs { try output.commit() }
        }
    }

    /// Finishes compression and fsyncs, leaving only the rename to `commit`.
    private func makeDurable() throws(TensorFormatError) {
        guard !committed else { return }
        if let zstd {
            try zstd.finish { (piece) throws(TensorFormatError) in try Sys.writeAll(fd, piece, path) }
            self.zstd = nil
        }
        if temporaryPath != nil { try Sys.fsync(fd, path) }
    }

    /// Discards a file output (removes the temporary file); standard output cannot be taken back.
    public func discard() {
        if ownsStream && !committed {
            committed = true
            Sys.close(fd)
        }
        guard !committed, let temporaryPath else { return }
        committed = true
        Sys.close(fd)
        unlink(temporaryPath)
        TemporaryFiles.unregister(temporaryPath)
    }
}

extension OutputFile {
    /// Creates the folder `path` and its missing parents (mode 0755), as `mkdir -p` does. A failure is
    /// an `io-error` naming the folder that could not be made and the system's reason ("Not a
    /// directory" under a file), never Foundation's domain and number.
    public static func createFolder(_ path: String) throws(TensorFormatError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + component
            if mkdir(prefix, 0o755) == 0 { continue }
            let code = errno
            if code == EEXIST {
                if Sys.isDirectory(prefix) { continue }
                throw Sys.fail("cannot create the folder", prefix, code: ENOTDIR)
            }
            throw Sys.fail("cannot create the folder", prefix, code: code)
        }
    }
}

/// Identity of a file on disk, to refuse writing over an input.
public struct FileIdentity: Hashable, Sendable {
    let device: UInt64
    let inode: UInt64

    init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    public init?(path: String) {
        guard path != "-", let st = Sys.fileStatus(path: path) else { return nil }
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }
}
