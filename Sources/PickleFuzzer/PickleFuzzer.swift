import TensorFormats

/// Runs one input through everything that parses an untrusted PyTorch file: the restricted unpickler
/// on the raw bytes, the format sniffer, and the whole torch reader (zip directory or legacy
/// container, nested-dict rule, view validation) with every tensor materialised, so a view that
/// escaped validation would read outside the buffer and trip the address sanitizer.
func parseUntrusted(_ bytes: UnsafeRawBufferPointer) {
    var unpickler = TorchUnpickler()
    _ = try? unpickler.load(bytes)
    _ = SniffedFormat(prefix: bytes)
    for zip in [true, false] {
        guard let file = try? TorchFile(bytes, zip: zip) else { continue }
        for entry in file.entries where entry.byteCount <= 1 << 24 { _ = file.contiguousBytes(of: entry, in: bytes) }
    }
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// The executable's entry point under SwiftPM: hands control to libFuzzer's driver
/// (scripts/fuzz builds this with -sanitize=fuzzer -DFUZZING).
@_cdecl("PickleFuzzer_main")
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
