import CLinux
import CZstd
import Foundation

/// zstd frames around any stream (formats/zstd.md): detection by magic number, a streaming
/// compressor (multithreaded where libzstd was built with threads) and a streaming decompressor
/// whose memory is bounded by libzstd's window limit, not by the data size.
public enum Zstd {
    /// The frame magic number 0xFD2FB528, as it appears on disk (little-endian).
    public static let magic: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD]

    /// True when `prefix` starts a zstd frame or a skippable frame (magic 0x184D2A50...0x184D2A5F,
    /// little-endian: `5?` `2A 4D 18`), which the zstd format allows first in a stream and the decoder skips.
    public static func hasMagic<C: Collection>(_ prefix: C) -> Bool where C.Element == UInt8 {
        if prefix.starts(with: magic) { return true }
        let head = Array(prefix.prefix(4))
        return head.count == 4 && head[0] & 0xF0 == 0x50 && head[1] == 0x2A && head[2] == 0x4D && head[3] == 0x18
    }

    public static let defaultLevel = 3
    public static var maximumLevel: Int { Int(ZSTD_maxCLevel()) }

    /// Largest window the decompressor accepts (2^27 = 128 MiB, libzstd's default without
    /// `--long`): bounds its memory whatever the input claims.
    public static let maximumWindowLog = 27

    static func message(_ code: Int) -> String { String(cString: ZSTD_getErrorName(code)) }
}

extension ErrorCode {
    /// A zstd stream is corrupt or uses parameters beyond the decompressor's limits.
    public static let zstdCorrupt = Self(rawValue: "zstd-corrupt")
}

/// Compresses a byte stream into one zstd frame, piece by piece.
///
/// `compress` and `finish` hand finished output to `sink` as it is produced, so memory stays at
/// libzstd's buffers (plus its workers' jobs when multithreaded). The frame carries a checksum.
public final class ZstdEncoder {
    private let context: OpaquePointer
    private let output: UnsafeMutableRawBufferPointer
    /// Worker threads in use (0: compression runs on the calling thread).
    public private(set) var workers = 0
    public let level: Int

    /// `workers` nil uses one per core the process may run on (its affinity mask); libzstd without thread support runs single-threaded.
    public init(level: Int = Zstd.defaultLevel, workers: Int? = nil) throws(TensorFormatError) {
        guard let context = ZSTD_createCCtx() else { throw TensorFormatError(.io, "cannot allocate a zstd compression context") }
        self.context = context
        self.level = level
        output = .allocate(byteCount: ZSTD_CStreamOutSize(), alignment: 64)
        try set(ZSTD_c_compressionLevel, Int32(level), "level \(level)")
        try set(ZSTD_c_checksumFlag, 1, "checksum")
        // The affinity mask's CPUs (a rank bound to one core compresses on that core alone).
        let affinity = Int(dms_affinity_cpu_count())
        let wanted = workers ?? (affinity > 0 ? affinity : ProcessInfo.processInfo.activeProcessorCount)
        if wanted > 1, ZSTD_isError(ZSTD_CCtx_setParameter(context, ZSTD_c_nbWorkers, Int32(wanted))) == 0 {
            self.workers = wanted
        }
    }

    deinit {
        ZSTD_freeCCtx(context)
        output.deallocate()
    }

    private func set(_ parameter: ZSTD_cParameter, _ value: Int32, _ what: String) throws(TensorFormatError) {
        let result = ZSTD_CCtx_setParameter(context, parameter, value)
        guard ZSTD_isError(result) == 0 else {
            throw TensorFormatError(.invalidArgument, "zstd rejects \(what): \(Zstd.message(result))")
        }
    }

    /// Feeds `input`; compressed bytes go to `sink` when ready.
    public func compress(_ input: UnsafeRawBufferPointer, _ sink: (UnsafeRawBufferPointer) throws(TensorFormatError) -> Void) throws(TensorFormatError) {
        guard input.count > 0 else { return }
        var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while inBuffer.pos < inBuffer.size {
            try step(&inBuffer, ZSTD_e_continue, sink)
        }
    }

    /// Ends the frame: everything still buffered goes to `sink`.
    public func finish(_ sink: (UnsafeRawBufferPointer) throws(TensorFormatError) -> Void) throws(TensorFormatError) {
        var inBuffer = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        while try step(&inBuffer, ZSTD_e_end, sink) != 0 {}
    }

    @discardableResult
    private func step(_ inBuffer: inout ZSTD_inBuffer, _ directive: ZSTD_EndDirective,
                      _ sink: (UnsafeRawBufferPointer) throws(TensorFormatError) -> Void) throws(TensorFormatError) -> Int {
        var outBuffer = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
        let remaining = ZSTD_compressStream2(context, &outBuffer, &inBuffer, directive)
        guard ZSTD_isError(remaining) == 0 else {
            throw TensorFormatError(.io, "zstd compression failed: \(Zstd.message(remaining))")
        }
        if outBuffer.pos > 0 { try sink(UnsafeRawBufferPointer(rebasing: output[0..<outBuffer.pos])) }
        return remaining
    }
}

/// Decompresses zstd data arriving in pieces: one or more frames (skippable frames ignored).
public final class ZstdDecoder {
    private let context: OpaquePointer
    /// True between a frame's first byte and its last.
    public private(set) var isInsideFrame = false

    public init() throws(TensorFormatError) {
        guard let context = ZSTD_createDCtx() else { throw TensorFormatError(.io, "cannot allocate a zstd decompression context") }
        self.context = context
        ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, Int32(Zstd.maximumWindowLog))
    }

    deinit { ZSTD_freeDCtx(context) }

    /// Decompresses from `input` (advancing its position) into `output`; returns bytes produced.
    /// Stops when `output` is full or `input` is used up.
    public func decompress(_ input: inout ZSTD_inBuffer, into output: UnsafeMutableRawBufferPointer) throws(TensorFormatError) -> Int {
        var outBuffer = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
        while outBuffer.pos < outBuffer.size, input.pos < input.size || isInsideFrame {
            let before = (input.pos, outBuffer.pos)
            let hint = ZSTD_decompressStream(context, &outBuffer, &input)
            guard ZSTD_isError(hint) == 0 else {
                throw TensorFormatError(.zstdCorrupt, "zstd data is corrupt: \(Zstd.message(hint))")
            }
            isInsideFrame = hint != 0
            if (input.pos, outBuffer.pos) == before { break }
        }
        return outBuffer.pos
    }
}

/// A `ByteSource` that decompresses another: how zstd input (a `.zst` file or a compressed pipe)
/// reaches the safetensors stream reader. Memory: one input buffer plus the decoder's window.
public final class ZstdDecompressingSource: ByteSource {
    private let base: ByteSource
    private let decoder: ZstdDecoder
    private let input: UnsafeMutableRawBufferPointer
    private var inBuffer: ZSTD_inBuffer
    private var ended = false

    public init(_ base: ByteSource) throws(TensorFormatError) {
        self.base = base
        decoder = try ZstdDecoder()
        input = .allocate(byteCount: ZSTD_DStreamInSize(), alignment: 64)
        inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: 0, pos: 0)
    }

    deinit { input.deallocate() }

    public var name: String { base.name }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(TensorFormatError) -> Int {
        guard buffer.count > 0 else { return 0 }
        while true {
            if inBuffer.pos == inBuffer.size, !ended {
                let count = try base.read(into: input)
                inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: count, pos: 0)
                if count == 0 { ended = true }
            }
            let produced: Int
            do {
                produced = try decoder.decompress(&inBuffer, into: buffer)
            } catch {
                throw error.inFile(name)
            }
            if produced > 0 { return produced }
            if ended {
                guard !decoder.isInsideFrame else {
                    throw TensorFormatError(.truncated, "zstd stream ends inside a frame", file: name)
                }
                return 0
            }
        }
    }
}
