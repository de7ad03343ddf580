import TensorFormats

/// Runs one input through everything that parses untrusted header bytes: the length check, the strict
/// JSON parser and validation (as a file of known size), and the same bytes as a stream.
func parseUntrusted(_ bytes: UnsafeRawBufferPointer) {
    let size = bytes.count
    if let n = try? SafetensorsHeader.headerLength(prefix: UnsafeRawBufferPointer(rebasing: bytes[0..<min(8, size)]), fileSize: size) {
        _ = try? SafetensorsHeader.parse(json: UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + n)]), fileSize: size)
    }
    let source = BufferSource(Array(bytes))
    if let checkpoint = try? Checkpoint.openStream(source, name: "-") {
        for entry in checkpoint.entries { try? checkpoint.read(entry, chunkBytes: 48) { _ in } }
        try? checkpoint.finish()
    }
}

final class BufferSource: ByteSource {
    let name = "-"
    private let bytes: [UInt8]
    private var position = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(TensorFormatError) -> Int {
        let n = min(buffer.count, bytes.count - position)
        if n > 0 { bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + position, byteCount: n) } }
        position += n
        return n
    }
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// The executable's entry point under SwiftPM: hands control to libFuzzer's driver
/// (scripts/fuzz builds this with -sanitize=fuzzer -DFUZZING).
@_cdecl("SafetensorsFuzzer_main")
public func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in
        parseUntrusted(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }
}
#else
import Foundation

/// Without libFuzzer: replays corpus files given as arguments (a crash reproduces under the debugger).
@main
struct ReplayCorpus {
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            data.withUnsafeBytes { parseUntrusted($0) }
        }
    }
}
#endif
