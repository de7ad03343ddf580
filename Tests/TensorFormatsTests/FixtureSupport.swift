import Foundation
import TensorFormats
import XCTest

/// Paths into the repository's fixtures/ folder.
enum Fixtures {
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures")

    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    static func json(_ relative: String) throws -> [String: Any] {
        let data = try Data(contentsOf: root.appendingPathComponent(relative))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}

/// A byte source over an in-memory buffer, handing out at most `step` bytes per read like a pipe.
final class MemorySource: ByteSource {
    let name: String
    private let bytes: [UInt8]
    private var position = 0
    private let step: Int

    init(_ bytes: [UInt8], name: String = "-", step: Int = 4096) {
        self.bytes = bytes
        self.name = name
        self.step = step
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(TensorFormatError) -> Int {
        let n = min(buffer.count, step, bytes.count - position)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + position, byteCount: n) }
        position += n
        return n
    }
}

func sha256Hex(_ bytes: [UInt8]) -> String {
    // Hashing lives in Surgery (swift-crypto); the tests compare via the system tool to stay independent.
    let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("dms-\(UUID().uuidString)")
    FileManager.default.createFile(atPath: tmp.path, contents: Data(bytes))
    defer { try? FileManager.default.removeItem(at: tmp) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    process.arguments = [tmp.path]
    let pipe = Pipe()
    process.standardOutput = pipe
    try? process.run()
    let out = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: out.prefix(64), as: UTF8.self)
}
