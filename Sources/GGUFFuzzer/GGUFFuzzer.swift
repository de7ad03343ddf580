import TensorFormats

/// Runs one input through everything that reads untrusted GGUF bytes: the header parser and its
/// rules, the original-shape keys, and the block decoder over every tensor's data.
func parseUntrusted(_ bytes: UnsafeRawBufferPointer) {
    guard let header = try? GGUFHeader.parse(bytes) else { return }
    var floats = [Float]()
    for tensor in header.tensors {
        _ = try? header.originalShape(of: tensor, in: bytes)
        guard tensor.type.isQuantized, tensor.byteCount > 0 else { continue }
        let blocks = tensor.byteCount / tensor.type.typeSize
        floats = [Float](repeating: 0, count: blocks * tensor.type.blockSize)
        floats.withUnsafeMutableBufferPointer { out in
            GGMLQuants.dequantize(tensor.type, bytes.baseAddress! + header.dataStart + tensor.offset, blocks: blocks, into: out.baseAddress!)
        }
    }
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// The executable's entry point under SwiftPM: hands control to libFuzzer's driver
/// (`scripts/fuzz` builds this with -sanitize=fuzzer -DFUZZING).
@_cdecl("GGUFFuzzer_main")
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
