import Foundation
import TensorFormats
import XCTest

/// One temporary-file story: spools have no name (SIGKILL leaves nothing in $TMPDIR), and HDF5 output
/// goes through OutputFile like every other output (a FIFO stays a FIFO).
final class TemporaryFilesCLITests: XCTestCase {
    private var directory: URL!
    private let weights = CLI.fixture("default/diffusion_pytorch_model.safetensors")

    override func setUpWithError() throws { directory = try CLI.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func testSIGKILLWhileStandardInputIsSpooledLeavesNothingInTMPDIR() throws {
        let h5 = path("m.h5"), tmp = path("tmp")
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        XCTAssertEqual(try CLI.run(["convert", weights, h5, "-q"]).status, 0)
        let r = try CLI.shell("""
            (cat \(h5); sleep 3) | TMPDIR=\(tmp) $DMS convert - \(path("out.safetensors")) -q & pid=$!
            sleep 1.5
            ls -A \(tmp) | wc -l > \(path("during"))
            kill -KILL $pid; wait; ls -A \(tmp)
            """)
        XCTAssertEqual(String(decoding: r.stdout, as: UTF8.self), "", "left in TMPDIR")
        XCTAssertEqual(try String(contentsOfFile: path("during"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), "0",
                       "the spool has no name while it fills")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("out.safetensors")))
    }

    func testHDF5OutputToAFIFOIsWrittenInPlace() throws {
        let fifo = path("fifo"), file = path("file.h5"), got = path("got.h5")
        XCTAssertEqual(try CLI.run(["convert", weights, file, "-q"]).status, 0)
        let r = try CLI.shell("""
            mkfifo \(fifo)
            $DMS convert \(weights) \(fifo) --to hdf5 -q & pid=$!
            cat \(fifo) > \(got); wait $pid; echo "status $?"; test -p \(fifo) && echo fifo
            """)
        let text = String(decoding: r.stdout, as: UTF8.self)
        XCTAssertTrue(text.contains("status 0") && text.contains("fifo"), text + r.stderr)
        // Same tensors and bytes (not the same file bytes: HDF5 stamps object headers with times).
        let written = try Checkpoint.open(got), direct = try Checkpoint.open(file)
        XCTAssertEqual(written.entries.map(\.info), direct.entries.map(\.info))
        for entry in direct.entries { XCTAssertEqual(try written.bytes(of: entry), try direct.bytes(of: entry), entry.name) }
    }

    func testHDF5ThroughPipesRoundTrips() throws {
        let r = try CLI.shell("$DMS convert \(weights) - --to hdf5 -q | $DMS convert - \(path("back.safetensors")) -q")
        XCTAssertEqual(r.status, 0, r.stderr)
        let back = try Checkpoint.open(path("back.safetensors")), source = try Checkpoint.open(weights)
        XCTAssertEqual(back.entries.map(\.name).sorted(), source.entries.map(\.name).sorted())
    }
}
