import TensorFormats
import TensorMath

/// Counts of non-finite values in one tensor.
public struct NonFiniteCounts: Sendable, Equatable {
    public var nan = 0
    public var positiveInfinity = 0
    public var negativeInfinity = 0

    public var total: Int { nan + positiveInfinity + negativeInfinity }

    static func + (lhs: NonFiniteCounts, rhs: NonFiniteCounts) -> NonFiniteCounts {
        NonFiniteCounts(nan: lhs.nan + rhs.nan, positiveInfinity: lhs.positiveInfinity + rhs.positiveInfinity,
                        negativeInfinity: lhs.negativeInfinity + rhs.negativeInfinity)
    }
}

enum ValueScan {
    /// Counts NaN and infinities in `elements` values of a float (or complex) type.
    static func nonFinite(_ dtype: DType, _ bytes: UnsafeRawBufferPointer, elements: Int) -> NonFiniteCounts {
        guard elements > 0 else { return NonFiniteCounts() }
        var partials = [NonFiniteCounts](repeating: NonFiniteCounts(), count: Parallel.maximumParts)
        let scalars = ElementCodec.scalarCount(dtype, elements: elements)
        partials.withUnsafeMutableBufferPointer { slots in
            switch dtype {
            case .f32, .c64:
                Parallel.forParts(count: scalars) { worker, part in
                    slots[worker] = scanBits(bytes, part, UInt32.self, exponent: 0x7F80_0000, sign: 0x8000_0000)
                }
            case .f64:
                Parallel.forParts(count: scalars) { worker, part in
                    slots[worker] = scanBits(bytes, part, UInt64.self, exponent: 0x7FF0_0000_0000_0000, sign: 0x8000_0000_0000_0000)
                }
            case .f16:
                Parallel.forParts(count: scalars) { worker, part in
                    slots[worker] = scanBits(bytes, part, UInt16.self, exponent: 0x7C00, sign: 0x8000)
                }
            case .bf16:
                Parallel.forParts(count: scalars) { worker, part in
                    slots[worker] = scanBits(bytes, part, UInt16.self, exponent: 0x7F80, sign: 0x8000)
                }
            default:
                Parallel.forParts(count: scalars, granularity: 4) { worker, part in
                    slots[worker] = scanDecoded(dtype, bytes, part)
                }
            }
        }
        return partials.reduce(NonFiniteCounts(), +)
    }

    /// IEEE layouts: all-ones exponent is infinity (zero mantissa) or NaN.
    private static func scanBits<T: FixedWidthInteger & UnsignedInteger>(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _: T.Type,
                                                                          exponent: T, sign: T) -> NonFiniteCounts {
        var counts = NonFiniteCounts()
        let base = bytes.baseAddress!
        let stride = MemoryLayout<T>.size
        var special = 0
        // A first branch-free pass finds whether anything is special at all; most tensors have nothing.
        for i in range {
            let bits = base.loadUnaligned(fromByteOffset: i * stride, as: T.self)
            special &+= (bits & exponent) == exponent ? 1 : 0
        }
        guard special > 0 else { return counts }
        for i in range {
            let bits = base.loadUnaligned(fromByteOffset: i * stride, as: T.self)
            guard bits & exponent == exponent else { continue }
            if bits & ~(exponent | sign) != 0 {
                counts.nan += 1
            } else if bits & sign != 0 {
                counts.negativeInfinity += 1
            } else {
                counts.positiveInfinity += 1
            }
        }
        return counts
    }

    private static func scanDecoded(_ dtype: DType, _ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> NonFiniteCounts {
        var counts = NonFiniteCounts()
        let startByte = range.lowerBound * dtype.bitsPerElement / 8
        let endByte = (range.upperBound * dtype.bitsPerElement + 7) / 8
        let values = UnsafeMutableBufferPointer<Double>.allocate(capacity: range.count)
        defer { values.deallocate() }
        ElementCodec.decode(dtype, UnsafeRawBufferPointer(rebasing: bytes[startByte..<endByte]), elements: range.count, into: values)
        for v in values where !v.isFinite {
            if v.isNaN { counts.nan += 1 } else if v > 0 { counts.positiveInfinity += 1 } else { counts.negativeInfinity += 1 }
        }
        return counts
    }
}
