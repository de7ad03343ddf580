import Crypto
import Foundation
import TensorFormats

/// Chooses the units to keep from importance scores, and writes the pruned checkpoint.
public enum Pruner {
    /// Kept unit indices (ascending) per layer. Uniform: every selected layer drops floor(ratio x its
    /// units) of its least important units. Global: the least important floor(ratio x total) units of
    /// each kind across the selected layers, never a layer's last unit. Ties drop the higher index.
    /// Layers that `selected` rejects keep every unit.
    public static func choose(_ units: PruningUnits, scores: [[Double]], ratio: Double, global: Bool,
                              selected: (PrunableLayer) -> Bool) -> [[Int]] {
        func dropCount(_ n: Int) -> Int { Int((ratio * Double(n) + 1e-9).rounded(.down)) }
        var dropped = units.layers.map { [Bool](repeating: false, count: $0.units) }
        let chosen = units.layers.indices.filter { selected(units.layers[$0]) }
        if global {
            for kind in PrunableKind.allCases {
                let layers = chosen.filter { units.layers[$0].kind == kind }
                var candidates: [(score: Double, layer: Int, unit: Int)] = []
                for l in layers {
                    for u in 0..<units.layers[l].units { candidates.append((scores[l][u], l, u)) }
                }
                candidates.sort { a, b in
                    if a.score != b.score { return a.score < b.score }
                    if a.layer != b.layer { return a.layer > b.layer }
                    return a.unit > b.unit
                }
                var left = Dictionary(uniqueKeysWithValues: layers.map { ($0, units.layers[$0].units) })
                var toDrop = dropCount(candidates.count)
                for c in candidates where toDrop > 0 && left[c.layer]! > 1 {
                    dropped[c.layer][c.unit] = true
                    left[c.layer]! -= 1
                    toDrop -= 1
                }
            }
        } else {
            for l in chosen {
                let n = units.layers[l].units
                let order = (0..<n).sorted { a, b in
                    scores[l][a] != scores[l][b] ? scores[l][a] < scores[l][b] : a > b
                }
                for u in order.prefix(min(dropCount(n), n - 1)) { dropped[l][u] = true }
            }
        }
        return dropped.map { d in d.indices.filter { !d[$0] } }
    }

    /// sha256 over every tensor in storage order, each as the line `NAME DTYPE [D0,D1,…]\n` followed by
    /// its bytes: the same for a file, a folder or a stream of the same tensors (formats/mask.md).
    public static func tensorsSHA256(_ checkpoint: Checkpoint, progress: ProgressSink? = nil) throws -> String {
        var hasher = SHA256()
        var done = 0
        for entry in checkpoint.entries {
            hasher.update(data: Array("\(entry.name) \(entry.dtype.rawValue) [\(entry.shape.map(String.init).joined(separator: ","))]\n".utf8))
            try checkpoint.read(entry) { piece in
                hasher.update(bufferPointer: piece)
                done += piece.count
                progress?(done)
            }
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Output tensors in the input's storage order, with pruned shapes.
    public static func outputSpecs(_ checkpoint: Checkpoint, units: PruningUnits, kept: [[Int]]) -> [(name: String, dtype: DType, shape: [Int])] {
        let index = units.tensorIndex()
        return checkpoint.entries.map { entry in
            guard let (layer, tensor) = index[entry.name] else { return (entry.name, entry.dtype, entry.shape) }
            return (entry.name, entry.dtype, tensor.prunedShape(keeping: kept[layer].count))
        }
    }

    /// Writes the pruned checkpoint: coupled tensors as byte-exact slices in their own dtype, every other
    /// tensor copied as is. `checkpoint` must allow random access (the writer's order is by dtype and name).
    @discardableResult
    public static func write(_ checkpoint: Checkpoint, units: PruningUnits, kept: [[Int]], metadata: Metadata?,
                             to output: OutputFile, progress: ProgressSink? = nil) throws -> ConvertResult {
        let index = units.tensorIndex()
        let writer = SafetensorsWriter(tensors: outputSpecs(checkpoint, units: units, kept: kept), metadata: metadata)
        var result = ConvertResult()
        var bytesRead = 0
        var gathered = UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 64)
        defer { gathered.deallocate() }
        try writer.write(to: output) { info, sink in
            let entry = checkpoint.entry(named: info.name)!
            result.tensors += 1
            guard let (layer, tensor) = index[entry.name], kept[layer].count < units.layers[layer].units else {
                try checkpoint.read(entry) { piece in
                    try sink(piece)
                    bytesRead += piece.count
                    progress?(bytesRead)
                }
                return
            }
            let bits = entry.dtype.bitsPerElement
            let ranges = try tensor.keptElementRanges(kept[layer]).map { r -> Range<Int> in
                guard (r.lowerBound * bits) % 8 == 0, (r.upperBound * bits) % 8 == 0 else {
                    throw SurgeryError(.unsupported, "a kept slice does not start on a byte boundary in \(entry.dtype.rawValue)",
                                            file: checkpoint.name, tensor: entry.name)
                }
                return (r.lowerBound * bits / 8)..<(r.upperBound * bits / 8)
            }
            var next = 0
            var position = 0
            try checkpoint.read(entry) { piece in
                if gathered.count < piece.count {
                    gathered.deallocate()
                    gathered = .allocate(byteCount: piece.count, alignment: 64)
                }
                let pieceEnd = position + piece.count
                var filled = 0
                while next < ranges.count, ranges[next].lowerBound < pieceEnd {
                    let lo = max(ranges[next].lowerBound, position), hi = min(ranges[next].upperBound, pieceEnd)
                    if hi > lo {
                        gathered.baseAddress!.advanced(by: filled).copyMemory(from: piece.baseAddress!.advanced(by: lo - position), byteCount: hi - lo)
                        filled += hi - lo
                    }
                    if ranges[next].upperBound > pieceEnd { break }
                    next += 1
                }
                try sink(UnsafeRawBufferPointer(rebasing: gathered[0..<filled]))
                position = pieceEnd
                bytesRead += piece.count
                progress?(bytesRead)
            }
        }
        result.bytesRead = bytesRead
        result.bytesWritten = output.bytesWritten
        return result
    }
}

extension MetadataKey {
    /// The pruning mask a checkpoint was cut with, as compact JSON (formats/mask.md).
    public static let mask = "dmsurgery.mask"
}
