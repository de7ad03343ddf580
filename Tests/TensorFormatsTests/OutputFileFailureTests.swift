import Foundation
@testable import TensorFormats
import XCTest

/// OutputFile with injected system-call failures: a failed write, fsync or rename is an `io-error`
/// naming the output, leaves no temporary file, and never replaces the previous file.
final class OutputFileFailureTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dms-fail-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        for call in [Sys.Call.write, .fsync, .rename] { Sys.inject(call, errno: nil) }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Writes "new" over a file holding "old" with `call` failing; returns the error.
    private func failedWrite(_ call: Sys.Call, errno code: Int32) throws -> TensorFormatError? {
        let path = directory.appendingPathComponent("out.bin").path
        try Data("old".utf8).write(to: URL(fileURLWithPath: path))
        var thrown: TensorFormatError?
        do {
            let output = try OutputFile(path: path)
            Sys.inject(call, errno: code)
            defer { Sys.inject(call, errno: nil) }
            do {
                try output.write(Array("new".utf8))
                try output.commit()
            } catch {
                output.discard()
                throw error
            }
        } catch {
            thrown = error as? TensorFormatError
        }
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "old", "the previous file was replaced")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["out.bin"], "a temporary file was left")
        return thrown
    }

    func testAFailedWriteIsAnIOErrorAndLeavesNothing() throws {
        let error = try failedWrite(.write, errno: ENOSPC)
        XCTAssertEqual(error?.code, .io)
        XCTAssertTrue(error?.message.contains("No space left on device") ?? false, "\(String(describing: error))")
        XCTAssertEqual(error?.file, directory.appendingPathComponent("out.bin").path)
    }

    func testAFailedFsyncIsAnIOErrorAndLeavesNothing() throws {
        let error = try failedWrite(.fsync, errno: EIO)
        XCTAssertEqual(error?.code, .io)
        XCTAssertTrue(error?.message.hasPrefix("fsync failed") ?? false, "\(String(describing: error))")
    }

    func testAFailedRenameIsAnIOErrorAndLeavesNothing() throws {
        let error = try failedWrite(.rename, errno: EXDEV)
        XCTAssertEqual(error?.code, .io)
        XCTAssertTrue(error?.message.hasPrefix("cannot rename") ?? false, "\(String(describing: error))")
    }

    func testWithoutFailuresTheFileIsReplaced() throws {
        let path = directory.appendingPathComponent("out.bin").path
        try Data("old".utf8).write(to: URL(fileURLWithPath: path))
        let output = try OutputFile(path: path)
        try output.write(Array("new".utf8))
        try output.commit()
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "new")
    }
}
