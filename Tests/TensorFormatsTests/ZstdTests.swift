import Foundation
import XCTest
@testable import TensorFormats

final class ZstdTests: XCTestCase {
    /// Compressible but not trivial: a slow ramp with noise in the low bits.
    static func sample(_ count: Int) -> [UInt8] {
        let noise = HDF5TestSupport.bytes(count, seed: 42)
        return (0..<count).map { UInt8(truncatingIfNeeded: $0 / 4096) &+ (noise[$0] & 3) }
    }

    static func compress(_ data: [UInt8], level: Int = 3, workers: Int? = nil, piece: Int = 100_003) throws -> [UInt8] {
        let encoder = try ZstdEncoder(level: level, workers: workers)
        var out: [UInt8] = []
        try data.withUnsafeBytes { raw in
            var start = 0
            while start < raw.count {
                let end = min(raw.count, start + piece)
                try encoder.compress(UnsafeRawBufferPointer(rebasing: raw[start..<end])) { (bytes) throws(TensorFormatError) in out += bytes }
                start = end
            }
        }
        try encoder.finish { (bytes) throws(TensorFormatError) in out += bytes }
        return out
    }

    static func drain(_ source: ByteSource, bufferSize: Int = 7919) throws -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: bufferSize)
        while true {
            let n = try buffer.withUnsafeMutableBytes { (raw) throws(TensorFormatError) in try source.read(into: raw) }
            if n == 0 { return out }
            out += buffer.prefix(n)
        }
    }

    static func run(_ arguments: [String], input: [UInt8]) throws -> [UInt8] {
        let directory = try HDF5TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let inputPath = directory.appendingPathComponent("in").path, outputPath = directory.appendingPathComponent("out").path
        FileManager.default.createFile(atPath: inputPath, contents: Data(input))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments + [inputPath, "-o", outputPath]
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "\(arguments)")
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: outputPath)))
    }

    func testZstdToolDecompressesOurStreamByteForByte() throws {
        let data = Self.sample(3 << 20)
        for workers in [0, 2] {
            let compressed = try Self.compress(data, level: 3, workers: workers)
            XCTAssertTrue(Zstd.hasMagic(compressed))
            XCTAssertLessThan(compressed.count, data.count / 2)
            XCTAssertEqual(try Self.run(["zstd", "-q", "-d", "-f"], input: compressed), data, "workers \(workers)")
        }
    }

    func testMultithreadedCompressionUsesWorkers() throws {
        XCTAssertEqual(try ZstdEncoder(level: 3, workers: 2).workers, 2)
        XCTAssertEqual(try ZstdEncoder(level: 3, workers: 1).workers, 0)
    }

    func testDecompressingSourceReadsOurOutputAndTheToolsThroughAPipe() throws {
        let data = Self.sample(1 << 20)
        for compressed in [try Self.compress(data), try Self.run(["zstd", "-q", "-19", "-f"], input: data)] {
            let source = try ZstdDecompressingSource(FileDescriptorSource(fd: HDF5TestSupport.pipeFeeding(compressed), name: "-", ownsDescriptor: true))
            XCTAssertEqual(try Self.drain(source), data)
        }
    }

    func testConcatenatedFramesDecodeAsOneStream() throws {
        let a = Self.sample(50_000), b = Array(Self.sample(70_000).reversed())
        let source = try ZstdDecompressingSource(FileDescriptorSource(fd: HDF5TestSupport.pipeFeeding(try Self.compress(a) + Self.compress(b)), name: "-", ownsDescriptor: true))
        XCTAssertEqual(try Self.drain(source), a + b)
    }

    func testTruncatedStreamIsAnError() throws {
        let compressed = try Self.compress(Self.sample(200_000))
        let source = try ZstdDecompressingSource(FileDescriptorSource(fd: HDF5TestSupport.pipeFeeding(Array(compressed.prefix(compressed.count / 2))), name: "-", ownsDescriptor: true))
        XCTAssertThrowsError(try Self.drain(source)) { error in
            XCTAssertEqual((error as? TensorFormatError)?.code, .truncated, "\(error)")
        }
    }

    func testCorruptStreamIsAnError() throws {
        var compressed = try Self.compress(Self.sample(200_000))
        for i in stride(from: 20, to: compressed.count - 8, by: 97) { compressed[i] ^= 0x5A }
        let source = try ZstdDecompressingSource(FileDescriptorSource(fd: HDF5TestSupport.pipeFeeding(compressed), name: "-", ownsDescriptor: true))
        XCTAssertThrowsError(try Self.drain(source)) { error in
            XCTAssertEqual((error as? TensorFormatError)?.code, .zstdCorrupt, "\(error)")
        }
    }

    /// zstd-compressed safetensors and HDF5 inputs open transparently, from a file or from a pipe.
    func testCompressedInputsOpenTransparently() throws {
        let directory = try HDF5TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let inputs = [HDF5TestSupport.repository.appendingPathComponent("fixtures/safetensors/valid/all_dtypes.safetensors").path,
                      HDF5TestSupport.fixture("keras3_bf16.weights.h5")]
        for path in inputs {
            let plain = try Checkpoint.open(path)
            let compressed = try Self.compress([UInt8](Data(contentsOf: URL(fileURLWithPath: path))), level: 9)
            let zst = directory.appendingPathComponent((path as NSString).lastPathComponent + ".zst").path
            FileManager.default.createFile(atPath: zst, contents: Data(compressed))
            let fromFile = try Checkpoint.open(zst)
            let fromPipe = try Checkpoint.openSniffing(FileDescriptorSource(fd: HDF5TestSupport.pipeFeeding(compressed), name: "-", ownsDescriptor: true))
            for opened in [fromFile, fromPipe] {
                XCTAssertEqual(opened.format, plain.format, path)
                XCTAssertEqual(opened.entries.map(\.name), plain.entries.map(\.name), path)
                XCTAssertEqual(opened.metadata, plain.metadata, path)
                for entry in opened.entries {
                    XCTAssertEqual(try opened.bytes(of: entry), try plain.bytes(of: plain.entry(named: entry.name)!), entry.name)
                }
                try opened.finish()
            }
        }
    }

    /// OutputFile with zstd: `zstd -d` of the result is the plain writer's output.
    func testCompressedOutputFileDecompressesToThePlainFile() throws {
        let directory = try HDF5TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = try Checkpoint.open(HDF5TestSupport.repository.appendingPathComponent("fixtures/safetensors/valid/mixed.safetensors").path)
        let writer = SafetensorsWriter(tensors: source.entries.map { ($0.name, $0.dtype, $0.shape) }, metadata: source.metadata)
        var outputs: [[UInt8]] = []
        for compress in [false, true] {
            let path = directory.appendingPathComponent(compress ? "out.safetensors.zst" : "out.safetensors").path
            let output = try OutputFile(path: path)
            if compress { output.zstd = try ZstdEncoder(level: 19) }
            try writer.write(to: output) { info, sink in try source.read(source.entry(named: info.name)!, sink) }
            try output.commit()
            outputs.append([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
        }
        XCTAssertTrue(Zstd.hasMagic(outputs[1]))
        XCTAssertEqual(try Self.run(["zstd", "-q", "-d", "-f"], input: outputs[1]), outputs[0])
    }
}
