#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TensorFormats

/// The few Open MPI calls data-parallel training needs, loaded with `dlopen` only when the process was
/// started by `mpirun`.
///
/// Why not link libmpi: linking makes every command (inspect, convert…) load libmpi and its
/// dependencies (open-rte, open-pal, hwloc, libevent, pmix) at start-up, and makes the build depend on
/// `libopenmpi-dev`; a single-process run must not pay for a cluster it does not use. Open MPI's handles
/// are pointers (`MPI_Comm` is `struct ompi_communicator_t *`) and its predefined handles are the
/// addresses of global objects (`MPI_COMM_WORLD` = `&ompi_mpi_comm_world`), so `dlsym` yields both the
/// functions and the constants; no C header is needed. This is Open MPI's ABI, not MPICH's (whose
/// handles are integers): the launcher check below looks for Open MPI's environment.
final class OpenMPI: @unchecked Sendable {
    typealias Handle = UnsafeMutableRawPointer
    private typealias InitFn = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Int32
    private typealias CommIntFn = @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32
    private typealias AllreduceFn = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle, Handle, Handle) -> Int32
    private typealias CommFn = @convention(c) (Handle) -> Int32
    private typealias AbortFn = @convention(c) (Handle, Int32) -> Int32
    private typealias VoidFn = @convention(c) () -> Int32

    /// Open MPI's `MPI_IN_PLACE` is the address 1.
    private static var inPlace: UnsafeRawPointer? { UnsafeRawPointer(bitPattern: 1) }

    let world: Handle
    let double: Handle
    let int: Handle
    let sum: Handle
    let max: Handle
    private let allreduceFn: AllreduceFn
    private let barrierFn: CommFn
    private let abortFn: AbortFn
    private let finalizeFn: VoidFn
    let rank: Int
    let size: Int

    /// True when an MPI launcher started this process (Open MPI's `mpirun`/`orted`, or a PMIx server).
    static var launched: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil
    }

    /// The world size the launcher announced, before `MPI_Init` (nil when it did not say).
    static var announcedSize: Int? {
        ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"].flatMap { Int($0) }
    }

    /// Loads libmpi (`DMSURGERY_LIBMPI`, else `libmpi.so.40`, Open MPI 3-5's soname) and calls `MPI_Init`.
    init() throws {
        let name = ProcessInfo.processInfo.environment["DMSURGERY_LIBMPI"] ?? "libmpi.so.40"
        // RTLD_GLOBAL: Open MPI's plugins resolve libmpi's symbols from the global scope.
        guard let library = dlopen(name, RTLD_NOW | RTLD_GLOBAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown"
            throw TensorFormatError(.io, "started by mpirun but cannot load Open MPI (\(reason)); install openmpi-bin or set DMSURGERY_LIBMPI", file: name)
        }
        func symbol(_ s: String) throws -> UnsafeMutableRawPointer {
            guard let p = dlsym(library, s) else {
                throw TensorFormatError(.io, "not Open MPI: no symbol \(s)", file: name)
            }
            return p
        }
        let initFn = unsafeBitCast(try symbol("MPI_Init"), to: InitFn.self)
        let rankFn = unsafeBitCast(try symbol("MPI_Comm_rank"), to: CommIntFn.self)
        let sizeFn = unsafeBitCast(try symbol("MPI_Comm_size"), to: CommIntFn.self)
        allreduceFn = unsafeBitCast(try symbol("MPI_Allreduce"), to: AllreduceFn.self)
        barrierFn = unsafeBitCast(try symbol("MPI_Barrier"), to: CommFn.self)
        abortFn = unsafeBitCast(try symbol("MPI_Abort"), to: AbortFn.self)
        finalizeFn = unsafeBitCast(try symbol("MPI_Finalize"), to: VoidFn.self)
        world = try symbol("ompi_mpi_comm_world")
        double = try symbol("ompi_mpi_double")
        int = try symbol("ompi_mpi_int")
        sum = try symbol("ompi_mpi_op_sum")
        max = try symbol("ompi_mpi_op_max")
        // The default error handler (MPI_ERRORS_ARE_FATAL) aborts the job on any failed call.
        guard initFn(nil, nil) == 0 else { throw TensorFormatError(.io, "MPI_Init failed", file: name) }
        var r: Int32 = 0, n: Int32 = 0
        _ = rankFn(world, &r)
        _ = sizeFn(world, &n)
        rank = Int(r)
        size = Int(n)
    }

    /// In-place all-reduce of `buffer` (at most Int32.max elements) with `op`.
    func allreduce(_ buffer: UnsafeMutableRawPointer, count: Int, type: Handle, op: Handle) {
        _ = allreduceFn(Self.inPlace, buffer, Int32(count), type, op, world)
    }

    func barrier() { _ = barrierFn(world) }

    func finalize() { _ = finalizeFn() }

    /// Kills every rank of the job (mpirun exits with `code`).
    func abort(_ code: Int32) -> Never {
        _ = abortFn(world, code)
        exit(code)
    }
}
