import TensorFormats
import TensorMath

/// Value differences between two tensors of the same shape. Relative error is |a−b| / |b|: the
/// second checkpoint is the reference.
public struct ValueDifference: Sendable, Equatable {
    public var elements = 0
    public var maxAbsoluteError = 0.0
    public var maxRelativeError = 0.0
    public var sumSquaredDifference = 0.0
    public var sumSquaredA = 0.0
    public var sumSquaredB = 0.0
    public var dot = 0.0
    /// Values where |a−b| > atol + rtol·|b|, or where one side is NaN and the other is not.
    public var overTolerance = 0

    /// ‖a−b‖ / ‖b‖ (0 when both are zero).
    public var relativeL2: Double {
        if sumSquaredB == 0 { return sumSquaredDifference == 0 ? 0 : .infinity }
        return (sumSquaredDifference / sumSquaredB).squareRoot()
    }

    /// a·b / (‖a‖‖b‖); 1 when both are zero, 0 when only one is.
    public var cosineSimilarity: Double {
        if sumSquaredA == 0 || sumSquaredB == 0 { return sumSquaredA == sumSquaredB ? 1 : 0 }
        return dot / (sumSquaredA.squareRoot() * sumSquaredB.squareRoot())
    }

    mutating func merge(_ other: ValueDifference) {
        elements += other.elements
        maxAbsoluteError = max(maxAbsoluteError, other.maxAbsoluteError)
        maxRelativeError = max(maxRelativeError, other.maxRelativeError)
        sumSquaredDifference += other.sumSquaredDifference
        sumSquaredA += other.sumSquaredA
        sumSquaredB += other.sumSquaredB
        dot += other.dot
        overTolerance += other.overTolerance
    }

    mutating func accumulate(_ a: Double, _ b: Double, atol: Double, rtol: Double) {
        elements += 1
        if a.isNaN || b.isNaN {
            if a.isNaN != b.isNaN { overTolerance += 1 }
            return
        }
        if a == b {
            if a.isFinite {
                sumSquaredA += a * a
                sumSquaredB += b * b
                dot += a * b
            }
            return
        }
        let difference = abs(a - b)
        maxAbsoluteError = max(maxAbsoluteError, difference)
        maxRelativeError = max(maxRelativeError, b == 0 ? .infinity : difference / abs(b))
        if difference > atol + rtol * abs(b) { overTolerance += 1 }
        sumSquaredDifference += difference * difference
        sumSquaredA += a * a
        sumSquaredB += b * b
        dot += a * b
    }
}

/// One tensor present in both checkpoints.
public struct TensorComparison: Sendable {
    public var name: String
    public var dtypeA: DType
    public var dtypeB: DType
    public var shapeA: [Int]
    public var shapeB: [Int]
    /// Bytes equal and dtypes equal: nothing else to report.
    public var identical: Bool
    /// nil when shapes differ (values are not compared then).
    public var values: ValueDifference?

    public var shapeChanged: Bool { shapeA != shapeB }
    public var dtypeChanged: Bool { dtypeA != dtypeB }
}

public struct MetadataDifference: Sendable, Equatable {
    public var key: String
    public var a: String?
    public var b: String?
}

public struct DiffOptions: Sendable {
    public var absoluteTolerance: Double
    public var relativeTolerance: Double
    /// Compare values only: a dtype change alone does not make the checkpoints differ.
    public var ignoreDType: Bool
    public var ignoreMetadata: Bool

    public init(absoluteTolerance: Double = 0, relativeTolerance: Double = 0, ignoreDType: Bool = false, ignoreMetadata: Bool = false) {
        self.absoluteTolerance = absoluteTolerance
        self.relativeTolerance = relativeTolerance
        self.ignoreDType = ignoreDType
        self.ignoreMetadata = ignoreMetadata
    }
}

public struct DiffReport: Sendable {
    public var a: String
    public var b: String
    public var options: DiffOptions
    public var onlyInA: [String] = []
    public var onlyInB: [String] = []
    public var compared: [TensorComparison] = []
    public var metadata: [MetadataDifference] = []

    /// Tensors whose dtype, shape or values (beyond tolerance) differ.
    public var changed: [TensorComparison] {
        compared.filter { t in
            if t.identical { return false }
            if t.shapeChanged { return true }
            if t.dtypeChanged && !options.ignoreDType { return true }
            return (t.values?.overTolerance ?? 0) > 0
        }
    }

    public var differs: Bool {
        !onlyInA.isEmpty || !onlyInB.isEmpty || !changed.isEmpty || (!options.ignoreMetadata && !metadata.isEmpty)
    }
}

/// Compares two checkpoints tensor by tensor, across dtypes and formats, in bounded memory.
public enum Differ {
    static let chunkElements = 1 << 20

    public static func diff(_ a: Checkpoint, _ b: Checkpoint, options: DiffOptions = DiffOptions(),
                            progress: ProgressSink? = nil) throws -> DiffReport {
        var report = DiffReport(a: a.name, b: b.name, options: options)
        let namesA = Set(a.entries.map { ByteKey($0.name) })
        let namesB = Set(b.entries.map { ByteKey($0.name) })
        report.onlyInA = a.entries.map(\.name).filter { !namesB.contains(ByteKey($0)) }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        report.onlyInB = b.entries.map(\.name).filter { !namesA.contains(ByteKey($0)) }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var done = 0
        for entryA in a.entries where namesB.contains(ByteKey(entryA.name)) {
            let entryB = b.entry(named: entryA.name)!
            report.compared.append(try compare(entryA, in: a, entryB, in: b, options: options))
            done += entryA.byteCount
            progress?(done)
        }
        report.compared.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        report.metadata = metadataDifferences(a.metadata, b.metadata)
        return report
    }

    static func metadataDifferences(_ a: Metadata?, _ b: Metadata?) -> [MetadataDifference] {
        let keys = (a?.keys ?? []) + (b?.keys ?? []).filter { a?[$0] == nil }
        return keys.compactMap { key in
            let va = a?[key], vb = b?[key]
            return va == vb ? nil : MetadataDifference(key: key, a: va, b: vb)
        }
    }

    static func compare(_ ea: TensorEntry, in a: Checkpoint, _ eb: TensorEntry, in b: Checkpoint,
                        options: DiffOptions) throws -> TensorComparison {
        var result = TensorComparison(name: ea.name, dtypeA: ea.dtype, dtypeB: eb.dtype, shapeA: ea.shape, shapeB: eb.shape,
                                      identical: false, values: nil)
        guard ea.shape == eb.shape, ea.dtype.isComplex == eb.dtype.isComplex else { return result }
        if ea.dtype == eb.dtype, try bytesEqual(ea, in: a, eb, in: b) {
            result.identical = true
            return result
        }
        var difference = ValueDifference()
        let elements = ea.elementCount
        var start = 0
        while start < elements {
            let count = min(chunkElements, elements - start)
            let rangeA = byteRange(ea.dtype, start, count)
            let rangeB = byteRange(eb.dtype, start, count)
            try a.read(ea, range: rangeA) { bytesA in
                try b.read(eb, range: rangeB) { bytesB in
                    difference.merge(compareChunk(ea.dtype, bytesA, eb.dtype, bytesB, elements: count, options: options))
                }
            }
            start += count
        }
        result.values = difference
        return result
    }

    private static func floatExact(_ dtype: DType) -> Bool { dtype == .f32 || dtype == .f16 || dtype == .bf16 }

    /// Float values of a chunk: the mapped bytes themselves for F32, a decoded copy otherwise.
    private static func floats(_ dtype: DType, _ bytes: UnsafeRawBufferPointer, _ count: Int) -> (values: UnsafeBufferPointer<Float>, release: () -> Void) {
        if dtype == .f32, Int(bitPattern: bytes.baseAddress) % MemoryLayout<Float>.alignment == 0 {
            return (bytes.bindMemory(to: Float.self), {})
        }
        let copy = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
        ElementCodec.decodeFloats(dtype, bytes, elements: count, into: copy)
        return (UnsafeBufferPointer(copy), { copy.deallocate() })
    }

    private static func byteRange(_ dtype: DType, _ start: Int, _ count: Int) -> Range<Int> {
        (start * dtype.bitsPerElement / 8)..<((start + count) * dtype.bitsPerElement + 7) / 8
    }

    private static func bytesEqual(_ ea: TensorEntry, in a: Checkpoint, _ eb: TensorEntry, in b: Checkpoint) throws -> Bool {
        let block = 16 << 20
        var start = 0
        while start < ea.byteCount {
            let end = min(ea.byteCount, start + block)
            var equal = false
            try a.read(ea, range: start..<end) { x in
                try b.read(eb, range: start..<end) { y in
                    equal = x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0
                }
            }
            if !equal { return false }
            start = end
        }
        return true
    }

    private static func compareChunk(_ dtypeA: DType, _ bytesA: UnsafeRawBufferPointer, _ dtypeB: DType, _ bytesB: UnsafeRawBufferPointer,
                                     elements: Int, options: DiffOptions) -> ValueDifference {
        var partials = [ValueDifference](repeating: ValueDifference(), count: Parallel.maximumParts)
        let atol = options.absoluteTolerance, rtol = options.relativeTolerance
        partials.withUnsafeMutableBufferPointer { slots in
            Parallel.forParts(count: elements, granularity: 4, minimumPerPart: 1 << 15) { worker, part in
                let ra = byteRange(dtypeA, part.lowerBound, part.count)
                let rb = byteRange(dtypeB, part.lowerBound, part.count)
                let a = UnsafeRawBufferPointer(rebasing: bytesA[ra]), b = UnsafeRawBufferPointer(rebasing: bytesB[rb])
                var local = ValueDifference()
                if floatExact(dtypeA) && floatExact(dtypeB) {
                    // Types that float32 holds exactly: decode to floats (F32 is read in place), accumulate in double.
                    let fa = floats(dtypeA, a, part.count), fb = floats(dtypeB, b, part.count)
                    defer { fa.release(); fb.release() }
                    for i in 0..<part.count { local.accumulate(Double(fa.values[i]), Double(fb.values[i]), atol: atol, rtol: rtol) }
                } else {
                    let scalars = ElementCodec.scalarCount(dtypeA, elements: part.count)
                    let va = UnsafeMutableBufferPointer<Double>.allocate(capacity: scalars)
                    let vb = UnsafeMutableBufferPointer<Double>.allocate(capacity: scalars)
                    defer { va.deallocate(); vb.deallocate() }
                    ElementCodec.decode(dtypeA, a, elements: part.count, into: va)
                    ElementCodec.decode(dtypeB, b, elements: part.count, into: vb)
                    for i in 0..<scalars { local.accumulate(va[i], vb[i], atol: atol, rtol: rtol) }
                    if dtypeA.isComplex { local.elements /= 2 }
                }
                slots[worker] = local
            }
        }
        var total = ValueDifference()
        for p in partials { total.merge(p) }
        return total
    }
}

#if canImport(Glibc)
import Glibc
#endif
