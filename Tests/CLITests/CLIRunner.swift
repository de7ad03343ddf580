import Foundation
import XCTest

/// Runs the built `dmsurgery` binary as a user would: arguments, standard input, both output streams
/// read concurrently (so a full pipe never deadlocks), and the exit status.
struct CLIResult {
    var status: Int32
    var stdout: Data
    var stderr: String
}

enum CLI {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The binary next to the test bundle (same build), or $DMSURGERY_BIN.
    static var binary: URL {
        if let override = ProcessInfo.processInfo.environment["DMSURGERY_BIN"] { return URL(fileURLWithPath: override) }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("dmsurgery")
    }

    static func fixture(_ path: String) -> String { repository.appendingPathComponent("fixtures/" + path).path }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dms-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @discardableResult
    static func run(_ arguments: [String], stdin: Data? = nil, stdinFile: String? = nil) throws -> CLIResult {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        let inPipe = Pipe()
        process.standardInput = stdinFile.map { FileHandle(forReadingAtPath: $0) as Any } ?? inPipe
        return try collect(process) {
            guard stdinFile == nil else { return }
            if let stdin { try? inPipe.fileHandleForWriting.write(contentsOf: stdin) }
            try? inPipe.fileHandleForWriting.close()
        }
    }

    /// Runs a shell pipeline with the binary as `$DMS`, from the repository root.
    @discardableResult
    static func shell(_ script: String) throws -> CLIResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-o", "pipefail", "-c", script]
        var environment = ProcessInfo.processInfo.environment
        environment["DMS"] = binary.path
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        return try collect(process) {}
    }

    /// Refuses to run a reference check without its Python packages, naming the fix: they are installed
    /// once, pinned, by `scripts/bootstrap --python` (fixtures/requirements*.txt; CI runs it first), never
    /// by a test. `statement` is the import line probed (`import diffusers, torch`).
    static func requirePython(_ statement: String) throws {
        let probe = try shell("python3 -c '\(statement)'")
        guard probe.status == 0 else {
            throw NSError(domain: "the reference packages are missing (\(statement)): run scripts/bootstrap --python", code: 1,
                          userInfo: [NSLocalizedDescriptionKey: probe.stderr])
        }
    }

    /// Starts `process` in the repository root, feeds it, and reads stdout and stderr concurrently to the end.
    private static func collect(_ process: Process, feed: () -> Void) throws -> CLIResult {
        process.currentDirectoryURL = repository
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        try process.run()
        let group = DispatchGroup()
        nonisolated(unsafe) var out = Data()
        nonisolated(unsafe) var err = Data()
        DispatchQueue.global().async(group: group) { out = outPipe.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: group) { err = errPipe.fileHandleForReading.readDataToEndOfFile() }
        feed()
        group.wait()
        process.waitUntilExit()
        return CLIResult(status: process.terminationStatus, stdout: out, stderr: String(decoding: err, as: UTF8.self))
    }
}

/// max |a − b| / max |b|: how far a result is from its reference, relative to the reference's scale;
/// infinity when either is missing, empty or the counts differ (so a test cannot pass on nothing).
func relativeMaxError(_ a: [Float]?, _ b: [Float]?) -> Float {
    guard let a, let b, a.count == b.count, !a.isEmpty else { return .infinity }
    var diff: Float = 0, scale: Float = 0
    for (x, y) in zip(a, b) { diff = max(diff, abs(x - y)); scale = max(scale, abs(y)) }
    return diff / max(scale, 1e-12)
}
