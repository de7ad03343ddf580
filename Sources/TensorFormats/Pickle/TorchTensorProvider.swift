/// Where one tensor's elements lie in a mapped torch file.
struct TorchTensorLayout {
    /// File offset of the storage's first byte.
    var storageStart: Int
    var dtype: DType
    var shape: [Int]
    var strides: [Int]
    var storageOffset: Int
    /// Bytes to reverse per unit for a big-endian file (zip `byteorder` record "big"), 1 for none. As
    /// torch does, the unit is the storage's element size: an `UntypedStorage` (float8, uint16 via
    /// `_rebuild_tensor_v3`) is never swapped, complex64 is swapped per 4-byte half.
    var swapUnit: Int

    var swapBytes: Bool { swapUnit > 1 }

    var elementBytes: Int { dtype.bitsPerElement / 8 }
    var elementCount: Int { shape.reduce(1, *) }

    /// C order: each stride the product of the sizes after it (size-1 dimensions may have any stride).
    var isContiguous: Bool {
        var expected = 1
        for (dim, step) in zip(shape, strides).reversed() where dim != 1 {
            if dim == 0 { return true }
            if step != expected { return false }
            expected *= dim
        }
        return true
    }

    /// File bytes the view can touch (validated against the storage when it was built).
    var span: Range<Int> {
        guard elementCount > 0 else { return storageStart..<storageStart }
        let last = storageOffset + zip(shape, strides).reduce(0) { $0 + ($1.0 - 1) * $1.1 }
        return (storageStart + storageOffset * elementBytes)..<(storageStart + (last + 1) * elementBytes)
    }

    /// Copies elements `first..<first+count` (in C order of `shape`) into `out`, swapping bytes when the
    /// file is big-endian: the one path for non-contiguous views and foreign byte order.
    func gather(from file: UnsafeRawBufferPointer, first: Int, count: Int, into out: UnsafeMutableRawBufferPointer) {
        let size = elementBytes
        guard count > 0 else { return }
        let rank = shape.count
        if rank == 0 {
            out.baseAddress!.copyMemory(from: file.baseAddress! + storageStart + storageOffset * size, byteCount: size)
        } else {
            var index = [Int](repeating: 0, count: rank)
            var rest = first
            for d in stride(from: rank - 1, through: 0, by: -1) {
                index[d] = rest % shape[d]
                rest /= shape[d]
            }
            var written = 0
            let innerStride = strides[rank - 1]
            while written < count {
                var source = storageOffset
                for d in 0..<rank { source += index[d] * strides[d] }
                let run = min(shape[rank - 1] - index[rank - 1], count - written)
                let from = file.baseAddress! + storageStart + source * size
                let to = out.baseAddress! + written * size
                if innerStride == 1 {
                    to.copyMemory(from: from, byteCount: run * size)
                } else {
                    for i in 0..<run { (to + i * size).copyMemory(from: from + i * innerStride * size, byteCount: size) }
                }
                written += run
                index[rank - 1] += run
                var d = rank - 1
                while d > 0, index[d] == shape[d] {
                    index[d] = 0
                    index[d - 1] += 1
                    d -= 1
                }
            }
        }
        if swapBytes { Self.swap(UnsafeMutableRawBufferPointer(rebasing: out[0..<(count * size)]), unit: swapUnit) }
    }

    private static func swap(_ bytes: UnsafeMutableRawBufferPointer, unit: Int) {
        guard unit > 1 else { return }
        var start = 0
        while start + unit <= bytes.count {
            var low = start, high = start + unit - 1
            while low < high {
                bytes.swapAt(low, high)
                low += 1
                high -= 1
            }
            start += unit
        }
    }
}

/// Tensors of a mapped torch file: contiguous little-endian ones are handed out straight from the map
/// (the zip format stores records uncompressed, so nothing is copied); other views are gathered into a
/// chunk-sized buffer in C order. Pages are released after each read, so memory stays bounded by the
/// chunk and the storage span of the tensor being read.
final class TorchTensorProvider: TensorDataProvider {
    let map: MappedFile
    private let layouts: [ByteKey: TorchTensorLayout]

    init(map: MappedFile, layouts: [ByteKey: TorchTensorLayout]) {
        self.map = map
        self.layouts = layouts
    }

    var isSequential: Bool { false }

    private func layout(_ entry: TensorEntry) throws(TensorFormatError) -> TorchTensorLayout {
        guard let layout = layouts[ByteKey(entry.name)] else { throw TensorFormatError(.notFound, "no such tensor", tensor: entry.name) }
        return layout
    }

    func read(_ entry: TensorEntry, chunkBytes: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let layout = try layout(entry)
        if entry.byteCount == 0 { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        if layout.isContiguous, !layout.swapBytes {
            var start = layout.span.lowerBound
            let end = start + entry.byteCount
            while start < end {
                let stop = min(end, start + chunkBytes)
                if stop < end { map.willRead(stop..<min(end, stop + chunkBytes)) }
                try body(map.bytes(start..<stop))
                map.release(start..<stop)
                start = stop
            }
            return
        }
        let size = layout.elementBytes
        let perChunk = max(1, chunkBytes / size)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: min(perChunk, entry.elementCount) * size, alignment: 64)
        defer {
            buffer.deallocate()
            map.release(layout.span)
        }
        var first = 0
        while first < entry.elementCount {
            let count = min(perChunk, entry.elementCount - first)
            layout.gather(from: map.bytes, first: first, count: count, into: buffer)
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<(count * size)]))
            first += count
        }
    }

    func read(_ entry: TensorEntry, range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let layout = try layout(entry)
        guard range.lowerBound >= 0, range.upperBound <= entry.byteCount else {
            throw TensorFormatError(.invalidArgument, "byte range \(range) outside the tensor's \(entry.byteCount) bytes", tensor: entry.name)
        }
        if range.isEmpty { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        if layout.isContiguous, !layout.swapBytes {
            let absolute = (layout.span.lowerBound + range.lowerBound)..<(layout.span.lowerBound + range.upperBound)
            try body(map.bytes(absolute))
            map.release(absolute)
            return
        }
        let size = layout.elementBytes
        let first = range.lowerBound / size
        let last = (range.upperBound + size - 1) / size
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: (last - first) * size, alignment: 64)
        defer { buffer.deallocate() }
        layout.gather(from: map.bytes, first: first, count: last - first, into: buffer)
        let skip = range.lowerBound - first * size
        try body(UnsafeRawBufferPointer(rebasing: buffer[skip..<(skip + range.count)]))
    }

    func finish() throws {}
}
