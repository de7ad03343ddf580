import TensorFormats

/// Runs one input through everything that reads untrusted ONNX bytes: the protobuf walk of ModelProto
/// and GraphProto, the small messages' decoding, the graph rules, the tensor plan (quantized nodes'
/// shapes) and every tensor's transposition or dequantization.
func parseUntrusted(_ bytes: UnsafeRawBufferPointer) {
    _ = try? Checkpoint.decodeONNX(bytes)
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// The executable's entry point under SwiftPM: hands control to libFuzzer's driver
/// (`scripts/fuzz` builds this with -sanitize=fuzzer -DFUZZING).
@_cdecl("ONNXFuzzer_main")
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
