import Foundation
import XCTest

/// What the binary loads at start-up and on demand (README, "Start-up and shared libraries"), and the
/// thread count it takes from the CPU affinity mask.
final class StartupCLITests: XCTestCase {
    private let safetensors = CLI.fixture("teacher/diffusion_pytorch_model.safetensors")

    /// libhdf5, libzstd, OpenBLAS and libpng are loaded on first use: the binary does not link them, and
    /// `inspect` of a safetensors file never opens them.
    func testInspectOfSafetensorsLoadsNoOnDemandLibrary() throws {
        let needed = try CLI.shell("ldd \"$DMS\"")
        XCTAssertEqual(needed.status, 0, needed.stderr)
        let linked = String(decoding: needed.stdout, as: UTF8.self)
        for library in ["libhdf5", "libzstd", "libopenblas", "libpng"] {
            XCTAssertFalse(linked.contains(library), "\(library) is linked:\n\(linked)")
        }
        let loads = try CLI.shell("LD_DEBUG=libs \"$DMS\" inspect \(safetensors) 2>&1 >/dev/null | grep 'calling init:' || true")
        let opened = String(decoding: loads.stdout, as: UTF8.self)
        XCTAssertFalse(opened.isEmpty, "LD_DEBUG printed nothing: the check would pass vacuously")
        for library in ["libhdf5", "libzstd", "libopenblas", "libpng", "libgfortran", "libcurl"] {
            XCTAssertFalse(opened.contains(library), "inspect loaded \(library):\n\(opened)")
        }
    }

    /// A missing on-demand library stops the command at its first use with one line naming it (exit 2),
    /// and the unfinished output is removed.
    func testAMissingOnDemandLibraryIsOneLineNamingItAndLeavesNoOutput() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let missing = directory.appendingPathComponent("absent/libzstd.so.1").path
        let out = directory.appendingPathComponent("model.safetensors.zst").path
        let r = try CLI.shell("DMSURGERY_LIBZSTD=\(missing) \"$DMS\" convert \(safetensors) \(out) -q")
        XCTAssertEqual(r.status, 2, r.stderr)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("dmsurgery: error: \(missing): io-error: "), r.stderr)
        XCTAssertTrue(r.stderr.contains("DMSURGERY_LIBZSTD"), r.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [], "no partial output")

        let h5 = try CLI.shell("DMSURGERY_LIBHDF5=\(missing) \"$DMS\" inspect \(CLI.fixture("hdf5/generic.h5"))")
        XCTAssertEqual(h5.status, 2, h5.stderr)
        XCTAssertEqual(h5.stderr.split(separator: "\n").count, 1, h5.stderr)
        XCTAssertTrue(h5.stderr.contains("HDF5 files") && h5.stderr.contains(missing), h5.stderr)
    }

    /// Pinned to one core (as `mpirun --bind-to core` pins each rank), the engine computes on one thread;
    /// unpinned, on every core the process may use (`nproc` reads the same mask).
    func testComputeThreadsFollowTheAffinityMask() throws {
        guard try CLI.shell("command -v taskset && taskset -c 0 true").status == 0 else { throw XCTSkip("taskset cannot pin here") }
        let bench = "bench train-step --model \(CLI.fixture("engine/ddpm_small")) --batch 1 --steps 1 --json -q"
        func threads(_ prefix: String) throws -> Int {
            let r = try CLI.shell("\(prefix) \"$DMS\" \(bench)")
            XCTAssertEqual(r.status, 0, r.stderr)
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
            return try XCTUnwrap(object["threads"] as? Int)
        }
        XCTAssertEqual(try threads("taskset -c 0"), 1)
        let cores = try XCTUnwrap(Int(String(decoding: try CLI.shell("nproc").stdout, as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        XCTAssertEqual(try threads(""), cores)
    }
}
