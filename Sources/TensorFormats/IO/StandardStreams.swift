#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reports and error lines, written with `write(2)` so that a full or closed stream is an error value,
/// never a trap (Foundation's `FileHandle.write(_: Data)` traps on EBADF, ENOSPC and EPIPE).
public enum StandardStreams {
    /// Keeps descriptors 0, 1 and 2 from being reused when the caller closed them (`>&-`): each closed
    /// one is reopened on /dev/null with the wrong access mode, so that the next output file cannot
    /// become "standard output" and every write to it fails with EBADF (an `io-error`, exit 2).
    public static func reserveClosedDescriptors() {
        for fd: Int32 in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] where fcntl(fd, F_GETFD) == -1 && errno == EBADF {
            let opened = open("/dev/null", fd == STDIN_FILENO ? O_WRONLY : O_RDONLY)
            if opened >= 0, opened != fd {
                _ = dup2(opened, fd)
                _ = close(opened)
            }
        }
    }

    /// Writes `text` to standard output; a failed write (a full disk, a closed stream) is an `io-error`.
    public static func writeOutput(_ text: String) throws(TensorFormatError) {
        var failure: TensorFormatError?
        Array(text.utf8).withUnsafeBytes { buffer in
            do throws(TensorFormatError) { try Sys.writeAll(STDOUT_FILENO, buffer, "-") } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Writes `text` to standard error. A failure is dropped: there is nowhere left to report it, and
    /// the exit status still says what happened.
    public static func writeError(_ text: String) {
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { buffer in
            _ = try? Sys.writeAll(STDERR_FILENO, buffer, "standard error")
        }
    }
}
