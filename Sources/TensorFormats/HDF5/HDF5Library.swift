import CHDF5
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one door to libhdf5: a process-wide lock, one-time setup and error reporting.
///
/// Debian's libhdf5 is the serial build, which is not thread-safe, so every call into it runs under
/// `HDF5Library.lock`. Setup silences HDF5's automatic error printing (its stack is turned into one
/// line by `failure`) and registers dmsurgery's own zstd filter (id 32015).
enum HDF5Library {
    /// A recursive mutex: handle deinitialisers close ids while a locked call may be on the stack.
    final class RecursiveLock: @unchecked Sendable {
        // Safe to share: the pthread mutex is the synchronisation itself and is never moved.
        private let mutex: UnsafeMutablePointer<pthread_mutex_t>

        init() {
            mutex = .allocate(capacity: 1)
            var attributes = pthread_mutexattr_t()
            pthread_mutexattr_init(&attributes)
            pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_RECURSIVE))
            pthread_mutex_init(mutex, &attributes)
            pthread_mutexattr_destroy(&attributes)
        }

        func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
            pthread_mutex_lock(mutex)
            defer { pthread_mutex_unlock(mutex) }
            return try body()
        }
    }

    static let lock = RecursiveLock()

    /// Runs `body` with the library set up and locked.
    static func locked<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try lock.withLock { () throws(E) -> T in
            setUp()
            return try body()
        }
    }

    /// Runs `body` on the file `label` under the crash guard (`dms_h5_guard_*` in the shim): should
    /// libhdf5 fault on corrupt input, the process prints one line naming the file and exits 2.
    static func guarded<T, E: Error>(file label: String, _ body: () throws(E) -> T) throws(E) -> T {
        try locked { () throws(E) -> T in
            guardDepth += 1
            if guardDepth == 1 {
                dms_h5_guard_set_file(label)
                dms_h5_guard_install()
            }
            defer {
                guardDepth -= 1
                if guardDepth == 0 { dms_h5_guard_remove() }
            }
            return try body()
        }
    }

    nonisolated(unsafe) private static var guardDepth = 0

    nonisolated(unsafe) private static var isSetUp = false

    /// H5open, silence the error stack, register zstd. Called under the lock.
    ///
    /// `H5dont_atexit` first: libhdf5's exit handler closes every id still open, and after a failed
    /// write (a full disk) the dataset and file ids it finds are half closed; closing them again
    /// segfaulted after the error line was printed (exit 139). Every file dmsurgery writes is closed
    /// (or abandoned and unlinked) explicitly, so nothing is lost by skipping the handler.
    private static func setUp() {
        guard !isSetUp else { return }
        isSetUp = true
        _ = H5dont_atexit()
        _ = H5open()
        dms_h5e_silence()
        _ = dms_h5z_register_zstd(hdf5ZstdFilter)
    }

    /// The pending HDF5 error stack as one line, cleared.
    static func takeErrorMessage() -> String {
        var buffer = [CChar](repeating: 0, count: 400)
        _ = dms_h5e_message(&buffer, buffer.count)
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A typed error for a failed HDF5 call: what dmsurgery was doing, then HDF5's own reason.
    static func failure(_ code: TensorFormatError.Code, _ doing: String, file: String?, tensor: String? = nil) -> TensorFormatError {
        let reason = takeErrorMessage()
        return TensorFormatError(code, reason.isEmpty ? doing : "\(doing): \(reason)", file: file, tensor: tensor)
    }
}

/// An HDF5 identifier owned by Swift: released when the last reference goes.
final class HDF5Handle {
    let id: hid_t

    /// Takes ownership of `id`; a negative id is a failed call and throws with HDF5's reason.
    init(_ id: hid_t, _ code: TensorFormatError.Code, _ doing: @autoclosure () -> String, file: String?, tensor: String? = nil) throws(TensorFormatError) {
        guard id >= 0 else { throw HDF5Library.failure(code, doing(), file: file, tensor: tensor) }
        self.id = id
    }

    deinit {
        HDF5Library.lock.withLock { _ = H5Idec_ref(id) }
    }
}

extension ErrorCode {
    /// libhdf5 could not open or read the file: not HDF5, truncated, or corrupt.
    public static let hdf5Unreadable = Self(rawValue: "hdf5-unreadable")
    /// A link to another file (Keras refuses these on load).
    public static let hdf5ExternalLink = Self(rawValue: "hdf5-external-link")
    /// A soft link (Keras refuses these on load).
    public static let hdf5SoftLink = Self(rawValue: "hdf5-soft-link")
    /// A dataset whose data lives in other files (virtual dataset).
    public static let hdf5VirtualDataset = Self(rawValue: "hdf5-virtual-dataset")
    /// A dataset whose data lives in raw external files.
    public static let hdf5ExternalStorage = Self(rawValue: "hdf5-external-storage")
    /// A dataset declaring more than 4 GiB and more than 1000x its stored bytes (a shape bomb).
    public static let hdf5DeclaredSize = Self(rawValue: "hdf5-declared-size")
    /// A dataset whose HDF5 type has no safetensors equivalent.
    public static let hdf5UnsupportedType = Self(rawValue: "hdf5-unsupported-type")
    /// The file does not have the structure its layout requires (Keras names, attributes).
    public static let hdf5InvalidLayout = Self(rawValue: "hdf5-invalid-layout")
    /// A tensor name the output format cannot hold (a NUL byte in an HDF5 name).
    public static let unrepresentableName = Self(rawValue: "unrepresentable-name")
    /// Writing an HDF5 file failed.
    public static let hdf5Write = Self(rawValue: "hdf5-write")
}
