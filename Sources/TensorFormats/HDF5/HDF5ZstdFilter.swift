import CHDF5
import CZstd

/// Largest chunk the filter will inflate: HDF5 chunks are limited to 4 GiB, so a frame claiming more
/// is hostile or corrupt.
private let maximumChunkBytes = 1 << 32

/// The chunk size of the dataset being read, set around `H5Dread` (under `HDF5Library.lock`, so one
/// read at a time): a frame may not inflate past it, whatever its header claims, so decompression is
/// bounded by what the dataset declares rather than by what the compressed data says.
enum HDF5ZstdFilterLimit {
    nonisolated(unsafe) static var chunkBytes: Int?

    static var current: Int { min(chunkBytes ?? maximumChunkBytes, maximumChunkBytes) }
}

/// HDF5 filter 32015 (zstd), as registered with The HDF Group and implemented by hdf5plugin:
/// one optional cd_value, the compression level (clamped to 1...ZSTD_maxCLevel(), default 3); each
/// chunk is one zstd frame. Decoding also accepts frames without a content size (streamed).
///
/// Buffers follow the H5Z contract: the input is freed and replaced only on success, with memory from
/// `H5allocate_memory`, so HDF5 can free it; returning 0 reports failure and leaves `*buf` alone.
let hdf5ZstdFilter: H5Z_func_t = { flags, cdCount, cdValues, byteCount, bufferSize, buffer in
    guard let buffer, let bufferSize, let input = buffer.pointee else { return 0 }
    if flags & UInt32(H5Z_FLAG_REVERSE) != 0 {
        guard let (output, size) = zstdDecodeChunk(input, byteCount) else { return 0 }
        H5free_memory(input)
        buffer.pointee = output
        bufferSize.pointee = size
        return size
    }
    var level = cdCount > 0 && cdValues != nil ? Int32(truncatingIfNeeded: cdValues![0]) : 3
    level = min(max(level, 1), ZSTD_maxCLevel())
    let capacity = ZSTD_compressBound(byteCount)
    guard let output = H5allocate_memory(capacity, false) else { return 0 }
    let written = ZSTD_compress(output, capacity, input, byteCount, level)
    guard ZSTD_isError(written) == 0 else {
        H5free_memory(output)
        return 0
    }
    H5free_memory(input)
    buffer.pointee = output
    bufferSize.pointee = capacity
    return written
}

/// Inflates one chunk's frame into HDF5-owned memory; nil on corrupt input.
private func zstdDecodeChunk(_ input: UnsafeRawPointer, _ count: Int) -> (UnsafeMutableRawPointer, Int)? {
    let declared = ZSTD_getFrameContentSize(input, count)
    if declared != dms_zstd_contentsize_unknown() {
        guard declared != dms_zstd_contentsize_error(), declared <= UInt64(HDF5ZstdFilterLimit.current) else { return nil }
        let size = Int(declared)
        guard let output = H5allocate_memory(max(size, 1), false) else { return nil }
        let produced = ZSTD_decompress(output, size, input, count)
        guard ZSTD_isError(produced) == 0, produced == size else {
            H5free_memory(output)
            return nil
        }
        return (output, size)
    }
    // No content size in the frame header: stream into a buffer that doubles as needed.
    guard let stream = ZSTD_createDStream() else { return nil }
    defer { ZSTD_freeDStream(stream) }
    let limit = HDF5ZstdFilterLimit.current
    var capacity = max(min(count * 4, limit), 1)
    guard var output = H5allocate_memory(capacity, false) else { return nil }
    var inBuffer = ZSTD_inBuffer(src: input, size: count, pos: 0)
    var produced = 0
    while true {
        var outBuffer = ZSTD_outBuffer(dst: output + produced, size: capacity - produced, pos: 0)
        let hint = ZSTD_decompressStream(stream, &outBuffer, &inBuffer)
        produced += outBuffer.pos
        if ZSTD_isError(hint) != 0 { H5free_memory(output); return nil }
        if hint == 0 { return (output, produced) }
        if inBuffer.pos == inBuffer.size && outBuffer.pos < outBuffer.size { H5free_memory(output); return nil }
        if produced == capacity {
            let grownCapacity = min(capacity * 2, limit)
            guard capacity < limit, let grown = H5resize_memory(output, grownCapacity) else {
                H5free_memory(output)
                return nil
            }
            output = grown
            capacity = grownCapacity
        }
    }
}
