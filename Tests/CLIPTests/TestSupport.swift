import Foundation
import XCTest

/// Paths and Python helpers shared by the CLIP tests. The reference packages come from
/// `scripts/bootstrap --python`.
enum TestSupport {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func fixture(_ relative: String) -> String {
        repository.appendingPathComponent("fixtures/clip/" + relative).path
    }

    struct Output { var status: Int32; var stdout: Data; var stderr: String }

    static func shell(_ command: String) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        process.currentDirectoryURL = repository
        var environment = ProcessInfo.processInfo.environment
        environment["HF_HUB_OFFLINE"] = "1"
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(status: process.terminationStatus, stdout: stdout, stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// Refuses to run a cross-check without its Python packages, naming the fix: they are installed
    /// once, pinned, by `scripts/bootstrap --python` (fixtures/requirements*.txt; CI runs it first),
    /// never by a test.
    static func requirePython(_ modules: String) throws {
        let probe = try shell("python3 -c 'import \(modules)'")
        guard probe.status == 0 else {
            throw NSError(domain: "the reference packages are missing (\(modules)): run scripts/bootstrap --python", code: 1,
                          userInfo: [NSLocalizedDescriptionKey: probe.stderr])
        }
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("clip-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Tokenizer folders built from the open-clip-torch wheel's real vocabulary, once per test run;
    /// returns the folder root and the .gz path.
    static let tokenizerFolders: Result<(root: String, gz: String), Error> = Result {
        try requirePython("transformers, tokenizers")
        let root = try temporaryDirectory().path
        let made = try shell("python3 fixtures/clip/tokenizer_folders.py \(root)")
        guard made.status == 0 else { throw NSError(domain: "tokenizer_folders.py: \(made.stderr)", code: 1) }
        let gz = String(decoding: made.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return (root, gz)
    }
}
