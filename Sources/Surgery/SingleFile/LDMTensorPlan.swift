import TensorFormats

/// One output tensor of a layout conversion: its name and shape, and the input bytes that make it, in
/// order. Conversions only move bytes (renames, fused q/k/v split or joined by row ranges, a small
/// transpose), so an output is written piece by piece straight from the mapped input.
public struct LDMOutputTensor: Sendable {
    public enum Piece: Sendable {
        /// Bytes `range` of an input tensor.
        case bytes(TensorEntry, Range<Int>)
        /// A rank-2 input tensor transposed (OpenCLIP's text projection; read whole, it is small).
        case transposed(TensorEntry)
    }

    public var name: String
    public var dtype: DType
    public var shape: [Int]
    public var pieces: [Piece]
    /// Which of the writer's input checkpoints the pieces come from (a pipeline has one per component).
    public var source = 0

    static func copy(_ entry: TensorEntry, as name: String, shape: [Int]? = nil) -> LDMOutputTensor {
        LDMOutputTensor(name: name, dtype: entry.dtype, shape: shape ?? entry.shape, pieces: [.bytes(entry, 0..<entry.byteCount)])
    }
}

/// Writes planned tensors as safetensors files, all committed together at the end.
struct LDMWriter {
    let sources: [Checkpoint]
    private(set) var pending: [OutputFile] = []
    private(set) var files: [String] = []
    private(set) var tensors = 0
    private(set) var bytes = 0

    init(sources: [Checkpoint]) { self.sources = sources }

    mutating func write(_ planned: [LDMOutputTensor], to path: String, metadata: Metadata? = nil) throws {
        let writer = SafetensorsWriter(tensors: planned.map { ($0.name, $0.dtype, $0.shape) }, metadata: metadata)
        let byName = Dictionary(planned.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let output = try OutputFile(path: path)
        pending.append(output)
        let sources = self.sources
        try writer.write(to: output) { info, sink in
            let tensor = byName[info.name]!
            let source = sources[tensor.source]
            for piece in tensor.pieces {
                switch piece {
                case .bytes(let entry, let range):
                    if range == 0..<entry.byteCount {
                        try source.read(entry) { try sink($0) }
                        continue
                    }
                    var start = range.lowerBound
                    while start < range.upperBound {
                        let end = min(range.upperBound, start + Checkpoint.defaultChunkBytes)
                        try source.read(entry, range: start..<end) { try sink($0) }
                        start = end
                    }
                case .transposed(let entry):
                    try transposed(try source.bytes(of: entry), entry).withUnsafeBytes { try sink($0) }
                }
            }
        }
        files.append(path)
        tensors += planned.count
        bytes += output.bytesWritten
    }

    mutating func writeText(_ text: String, to path: String) throws {
        let output = try OutputFile(path: path)
        try output.write(Array(text.utf8))
        pending.append(output)
        files.append(path)
    }

    func commit() throws {
        try OutputFile.commitTogether(pending)
    }

    private func transposed(_ bytes: [UInt8], _ entry: TensorEntry) -> [UInt8] {
        let rows = entry.shape[0], cols = entry.shape[1], size = entry.dtype.bitsPerElement / 8
        var out = [UInt8](repeating: 0, count: bytes.count)
        for r in 0..<rows {
            for c in 0..<cols {
                let from = (r * cols + c) * size, to = (c * rows + r) * size
                for k in 0..<size { out[to + k] = bytes[from + k] }
            }
        }
        return out
    }
}

extension LDMOutputTensor {
    /// Checks that a tensor's bytes can be moved by whole elements (no sub-byte packing), which the
    /// fused-q/k/v split and the transpose need.
    static func requireWholeBytes(_ entry: TensorEntry, file: String) throws {
        guard entry.dtype.bitsPerElement % 8 == 0 else {
            throw SurgeryError(.unsupported, "\(entry.dtype.rawValue) packs several values per byte; this tensor must be split or transposed", file: file, tensor: entry.name)
        }
    }

    /// Row slices of a fused `[3D, ...]` tensor: q, k, v.
    static func splitQKV(_ entry: TensorEntry, names: [String], file: String) throws -> [LDMOutputTensor] {
        try requireWholeBytes(entry, file: file)
        guard let rows = entry.shape.first, rows % 3 == 0, rows > 0 else {
            throw SurgeryError(.ldmShapeContradiction, "fused in_proj must have a multiple of 3 rows, shape is \(entry.shape)", file: file, tensor: entry.name)
        }
        let part = entry.byteCount / 3
        return names.enumerated().map { k, name in
            LDMOutputTensor(name: name, dtype: entry.dtype, shape: [rows / 3] + entry.shape.dropFirst(),
                            pieces: [.bytes(entry, (k * part)..<((k + 1) * part))])
        }
    }

    /// q, k, v stacked into one fused tensor.
    static func joinQKV(_ parts: [TensorEntry], name: String, file: String) throws -> LDMOutputTensor {
        let first = parts[0]
        for part in parts {
            guard part.dtype == first.dtype, part.shape == first.shape, !first.shape.isEmpty else {
                throw SurgeryError(.ldmShapeContradiction, "q, k and v projections differ in type or shape (\(first.shape) vs \(part.shape))", file: file, tensor: part.name)
            }
        }
        return LDMOutputTensor(name: name, dtype: first.dtype, shape: [first.shape[0] * 3] + first.shape.dropFirst(),
                               pieces: parts.map { .bytes($0, 0..<$0.byteCount) })
    }

    static func transpose(_ entry: TensorEntry, as name: String, file: String) throws -> LDMOutputTensor {
        try requireWholeBytes(entry, file: file)
        guard entry.shape.count == 2 else {
            throw SurgeryError(.ldmShapeContradiction, "a text projection must be rank 2, shape is \(entry.shape)", file: file, tensor: entry.name)
        }
        // Transposed in memory: real projections are a few MB; refuse what would not be one.
        guard entry.byteCount <= 256 << 20 else {
            throw SurgeryError(.unsupported, "a text projection of \(entry.byteCount) bytes is beyond any CLIP (at most 256 MiB transposed in memory)", file: file, tensor: entry.name)
        }
        return LDMOutputTensor(name: name, dtype: entry.dtype, shape: [entry.shape[1], entry.shape[0]], pieces: [.transposed(entry)])
    }
}
