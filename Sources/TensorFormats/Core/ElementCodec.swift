/// Reading and writing element values of every dtype, with torch's rounding.
///
/// Casts round to nearest even, as torch does, including its quirks measured on torch 2.13 CPU and
/// pinned by fixtures/safetensors/casts: a float64 source is first rounded to float32 before any
/// narrower target (torch's half, bfloat16 and float8 types are built from float), bfloat16 NaN is
/// 0xFFFF when the source is float32 (0x7FC0 from other types), F8_E4M3 saturates at ±448 (infinity included), FNUZ types overflow to their NaN, and
/// F8_E8M0 rounds the mantissa half up. F4 and F6 (no torch cast exists) saturate, as the OCP MX
/// specification recommends, and cannot hold NaN, which becomes +0 and counts as an overflow.
/// Widening keeps a NaN's sign and payload bits (torch's vectorised loops are position-dependent
/// there, so NaN payloads are compared as NaN, not bit for bit).
public enum ElementCodec {
    // MARK: - Half and bfloat16 bit conversions

    /// float32 -> IEEE half, round to nearest even; NaN keeps its sign and becomes quiet (0x7E00).
    @inline(__always)
    public static func halfBits(_ value: Float) -> UInt16 {
        let x = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: (x >> 16) & 0x8000)
        let a = x & 0x7FFF_FFFF
        if a > 0x7F80_0000 { return sign | 0x7E00 }
        if a >= 0x477F_F000 { return sign | 0x7C00 }
        if a < 0x3880_0000 {
            // Below the smallest normal half: adding 0.5 puts the half subnormal's bits at the bottom
            // of the float32 mantissa, and the hardware add rounds them to nearest even.
            let shifted = Float(bitPattern: a) + 0.5
            return sign | UInt16(truncatingIfNeeded: shifted.bitPattern &- 0x3F00_0000)
        }
        let mantissaOdd = (a >> 13) & 1
        let rounded = a &+ 0xC800_0FFF &+ mantissaOdd
        return sign | UInt16(truncatingIfNeeded: rounded >> 13)
    }

    /// IEEE half -> float32 (exact), from a table built once.
    @inline(__always)
    public static func float(halfBits bits: UInt16) -> Float {
        halfTable[Int(bits)]
    }

    static let halfTable: [Float] = (0..<65536).map { halfToFloatBits(UInt16($0)) }

    /// Exact half -> float32 by bit manipulation, keeping NaN payloads (a hardware convert would quiet them).
    private static func halfToFloatBits(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13) }
        if exponent == 0 {
            let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign != 0 ? -magnitude : magnitude
        }
        return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13)
    }

    /// float32 -> bfloat16, round to nearest even; every NaN becomes 0xFFFF as torch's vectorised cast gives.
    @inline(__always)
    public static func bfloat16Bits(_ value: Float) -> UInt16 {
        let x = value.bitPattern
        if x & 0x7FFF_FFFF > 0x7F80_0000 { return 0xFFFF }
        return UInt16(truncatingIfNeeded: (x &+ 0x7FFF &+ ((x >> 16) & 1)) >> 16)
    }

    @inline(__always)
    public static func float(bfloat16Bits bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    // MARK: - Small floats (F8, F6, F4)

    /// The bit layout and special values of a float narrower than 16 bits.
    public struct MiniFloat: Sendable {
        public enum Overflow: Sendable { case infinity, saturate, nan }
        public var exponentBits: Int
        public var mantissaBits: Int
        public var bias: Int
        /// Largest finite value's unbiased exponent and its significand as an integer (implicit bit included).
        var maxExponent: Int
        var maxSignificand: Int
        var overflow: Overflow
        var hasInfinity: Bool
        /// FNUZ: 0x80 is the only NaN, and there is no negative zero.
        var unsignedZeroNaN: Bool
        /// E4M3FN: the all-ones pattern (either sign) is NaN.
        var allOnesNaN: Bool
        var hasNaN: Bool { hasInfinity || unsignedZeroNaN || allOnesNaN }
        var width: Int { 1 + exponentBits + mantissaBits }

        public func decode(_ code: UInt8) -> Double {
            let signBit = UInt8(1) << (exponentBits + mantissaBits)
            if unsignedZeroNaN && code == signBit { return .nan }
            let negative = code & signBit != 0
            let magnitude = code & (signBit &- 1)
            if allOnesNaN && magnitude == signBit &- 1 { return .nan }
            let field = Int(magnitude >> mantissaBits)
            let mantissa = Int(magnitude) & ((1 << mantissaBits) - 1)
            if hasInfinity && field == (1 << exponentBits) - 1 {
                return mantissa == 0 ? (negative ? -.infinity : .infinity) : .nan
            }
            let value: Double
            if field == 0 {
                value = Double(mantissa) * Double(sign: .plus, exponent: 1 - bias - mantissaBits, significand: 1)
            } else {
                value = Double((1 << mantissaBits) + mantissa) * Double(sign: .plus, exponent: field - bias - mantissaBits, significand: 1)
            }
            return negative ? -value : value
        }

        /// Rounds `value` to nearest even. `overflowed` is set when a finite value left the range
        /// (or, for formats without NaN, a NaN had to be replaced).
        public func encode(_ value: Float) -> (code: UInt8, overflowed: Bool) {
            let signBit = UInt8(1) << (exponentBits + mantissaBits)
            let negative = value.sign == .minus
            let sign: UInt8 = negative ? signBit : 0
            if value.isNaN {
                if unsignedZeroNaN { return (signBit, false) }
                if allOnesNaN || hasInfinity { return (sign | (signBit &- 1), false) }
                return (0, true)
            }
            if value.isInfinite { return overflowCode(sign: sign, finiteInput: false) }
            let magnitude = Double(value.magnitude)
            let minExponent = 1 - bias
            var exponent = magnitude == 0 ? minExponent : max(Int(magnitude.exponent), minExponent)
            var significand = (magnitude * Double(sign: .plus, exponent: mantissaBits - exponent, significand: 1)).rounded(.toNearestOrEven)
            if significand == Double(1 << (mantissaBits + 1)) {
                exponent += 1
                significand /= 2
            }
            let q = Int(significand)
            if exponent > maxExponent || (exponent == maxExponent && q > maxSignificand) {
                return overflowCode(sign: sign, finiteInput: true)
            }
            if q == 0 { return (unsignedZeroNaN ? 0 : sign, false) }
            if q < 1 << mantissaBits { return (sign | UInt8(q), false) }
            let field = exponent + bias
            return (sign | UInt8(field << mantissaBits) | UInt8(q - (1 << mantissaBits)), false)
        }

        private func overflowCode(sign: UInt8, finiteInput: Bool) -> (code: UInt8, overflowed: Bool) {
            switch overflow {
            case .infinity:
                return (sign | UInt8(((1 << exponentBits) - 1) << mantissaBits), finiteInput)
            case .nan:
                return (UInt8(1) << (exponentBits + mantissaBits), finiteInput)
            case .saturate:
                let field = maxExponent + bias
                return (sign | UInt8(field << mantissaBits) | UInt8(maxSignificand - (1 << mantissaBits)), finiteInput)
            }
        }
    }

    public static func miniFloat(_ dtype: DType) -> MiniFloat? {
        switch dtype {
        case .f8e4m3: return MiniFloat(exponentBits: 4, mantissaBits: 3, bias: 7, maxExponent: 8, maxSignificand: 14,
                                       overflow: .saturate, hasInfinity: false, unsignedZeroNaN: false, allOnesNaN: true)
        case .f8e5m2: return MiniFloat(exponentBits: 5, mantissaBits: 2, bias: 15, maxExponent: 15, maxSignificand: 7,
                                       overflow: .infinity, hasInfinity: true, unsignedZeroNaN: false, allOnesNaN: false)
        case .f8e4m3fnuz: return MiniFloat(exponentBits: 4, mantissaBits: 3, bias: 8, maxExponent: 7, maxSignificand: 15,
                                           overflow: .nan, hasInfinity: false, unsignedZeroNaN: true, allOnesNaN: false)
        case .f8e5m2fnuz: return MiniFloat(exponentBits: 5, mantissaBits: 2, bias: 16, maxExponent: 15, maxSignificand: 7,
                                           overflow: .nan, hasInfinity: false, unsignedZeroNaN: true, allOnesNaN: false)
        case .f4: return MiniFloat(exponentBits: 2, mantissaBits: 1, bias: 1, maxExponent: 2, maxSignificand: 3,
                                   overflow: .saturate, hasInfinity: false, unsignedZeroNaN: false, allOnesNaN: false)
        case .f6e2m3: return MiniFloat(exponentBits: 2, mantissaBits: 3, bias: 1, maxExponent: 2, maxSignificand: 15,
                                       overflow: .saturate, hasInfinity: false, unsignedZeroNaN: false, allOnesNaN: false)
        case .f6e3m2: return MiniFloat(exponentBits: 3, mantissaBits: 2, bias: 3, maxExponent: 4, maxSignificand: 7,
                                       overflow: .saturate, hasInfinity: false, unsignedZeroNaN: false, allOnesNaN: false)
        default: return nil
        }
    }

    static let miniTables: [DType: [Double]] = {
        var tables: [DType: [Double]] = [:]
        for dtype in [DType.f8e4m3, .f8e5m2, .f8e4m3fnuz, .f8e5m2fnuz, .f4, .f6e2m3, .f6e3m2] {
            let format = miniFloat(dtype)!
            tables[dtype] = (0..<(1 << format.width)).map { format.decode(UInt8($0)) }
        }
        tables[.f8e8m0] = (0..<256).map { $0 == 255 ? .nan : Double(sign: .plus, exponent: $0 - 127, significand: 1) }
        return tables
    }()

    /// float32 -> F8_E8M0 (unsigned power of two): the sign is dropped, NaN and infinity map to 0xFF,
    /// and the significand rounds to nearest even, as torch does: for a normal number the implicit
    /// leading 1 is odd, so a half rounds up; for a subnormal it is 0, so exactly 2^-127 stays code 0.
    public static func e8m0Code(_ value: Float) -> (code: UInt8, overflowed: Bool) {
        let bits = value.bitPattern
        let exponent = (bits >> 23) & 0xFF
        if exponent == 0xFF { return (0xFF, false) }
        let guardBit = bits & 0x40_0000 != 0
        let sticky = bits & 0x3F_FFFF != 0
        if guardBit && (sticky || exponent != 0) { return (UInt8(exponent + 1), exponent + 1 == 0xFF) }
        return (UInt8(exponent), false)
    }

    // MARK: - Packed sub-byte access

    /// The code of element `index` of a packed 4- or 6-bit tensor (LSB-first bit order).
    @inline(__always)
    static func packedCode(_ bytes: UnsafeRawBufferPointer, bits: Int, index: Int) -> UInt8 {
        let bit = index * bits
        let byte = bit >> 3
        var word = UInt16(bytes[byte])
        if byte + 1 < bytes.count { word |= UInt16(bytes[byte + 1]) << 8 }
        return UInt8(truncatingIfNeeded: (word >> UInt16(bit & 7)) & UInt16((1 << bits) - 1))
    }

    @inline(__always)
    static func storePacked(_ bytes: UnsafeMutableRawBufferPointer, bits: Int, index: Int, code: UInt8) {
        let bit = index * bits
        let byte = bit >> 3
        let shift = bit & 7
        let mask = UInt16((1 << bits) - 1) << UInt16(shift)
        var word = UInt16(bytes[byte])
        if byte + 1 < bytes.count { word |= UInt16(bytes[byte + 1]) << 8 }
        word = (word & ~mask) | (UInt16(code) << UInt16(shift))
        bytes[byte] = UInt8(truncatingIfNeeded: word)
        if byte + 1 < bytes.count { bytes[byte + 1] = UInt8(truncatingIfNeeded: word >> 8) }
    }

    // MARK: - Bulk decode

    /// Number of real scalars `elements` values of `dtype` decode to (complex values are two).
    public static func scalarCount(_ dtype: DType, elements: Int) -> Int {
        dtype.isComplex ? elements * 2 : elements
    }

    /// Decodes `elements` values into doubles, exactly (integers beyond 2^53 excepted).
    public static func decode(_ dtype: DType, _ src: UnsafeRawBufferPointer, elements: Int, into dst: UnsafeMutableBufferPointer<Double>) {
        precondition(dst.count >= scalarCount(dtype, elements: elements))
        switch dtype {
        case .bool: for i in 0..<elements { dst[i] = src[i] != 0 ? 1 : 0 }
        case .u8: for i in 0..<elements { dst[i] = Double(src[i]) }
        case .i8: for i in 0..<elements { dst[i] = Double(Int8(bitPattern: src[i])) }
        case .i16: for i in 0..<elements { dst[i] = Double(src.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self).littleEndian) }
        case .u16: for i in 0..<elements { dst[i] = Double(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) }
        case .i32: for i in 0..<elements { dst[i] = Double(src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self).littleEndian) }
        case .u32: for i in 0..<elements { dst[i] = Double(src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian) }
        case .i64: for i in 0..<elements { dst[i] = Double(src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self).littleEndian) }
        case .u64: for i in 0..<elements { dst[i] = Double(src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self).littleEndian) }
        case .f16: for i in 0..<elements { dst[i] = Double(float(halfBits: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian)) }
        case .bf16: for i in 0..<elements { dst[i] = Double(float(bfloat16Bits: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian)) }
        case .f32: for i in 0..<elements { dst[i] = Double(Float(bitPattern: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian)) }
        case .c64: for i in 0..<(2 * elements) { dst[i] = Double(Float(bitPattern: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian)) }
        case .f64: for i in 0..<elements { dst[i] = Double(bitPattern: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self).littleEndian) }
        case .f8e4m3, .f8e5m2, .f8e4m3fnuz, .f8e5m2fnuz, .f8e8m0:
            let table = miniTables[dtype]!
            table.withUnsafeBufferPointer { t in for i in 0..<elements { dst[i] = t[Int(src[i])] } }
        case .f4, .f6e2m3, .f6e3m2:
            let table = miniTables[dtype]!
            let bits = dtype.bitsPerElement
            table.withUnsafeBufferPointer { t in
                for i in 0..<elements { dst[i] = t[Int(packedCode(src, bits: bits, index: i))] }
            }
        }
    }

    /// Decodes into float32: exact for every type up to 32 bits of float, rounded for F64 and large integers.
    public static func decodeFloats(_ dtype: DType, _ src: UnsafeRawBufferPointer, elements: Int, into dst: UnsafeMutableBufferPointer<Float>) {
        switch dtype {
        case .f32:
            precondition(dst.count >= elements)
            UnsafeMutableRawBufferPointer(dst).copyMemory(from: UnsafeRawBufferPointer(rebasing: src[0..<(4 * elements)]))
        case .f16:
            for i in 0..<elements { dst[i] = float(halfBits: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) }
        case .bf16:
            for i in 0..<elements { dst[i] = float(bfloat16Bits: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) }
        default:
            let scalars = scalarCount(dtype, elements: elements)
            let wide = UnsafeMutableBufferPointer<Double>.allocate(capacity: scalars)
            defer { wide.deallocate() }
            decode(dtype, src, elements: elements, into: wide)
            for i in 0..<scalars { dst[i] = Float(wide[i]) }
        }
    }

    // MARK: - Casts

    /// Casts `elements` values between floating types. Returns how many finite values overflowed the target.
    /// Non-float types are not cast here: the caller copies them.
    @discardableResult
    public static func cast(from source: DType, _ src: UnsafeRawBufferPointer, to target: DType,
                            _ dst: UnsafeMutableRawBufferPointer, elements: Int) -> Int {
        precondition(source.isFloatingPoint && target.isFloatingPoint)
        if source == target {
            let bytes = source.byteCount(elements: elements)!
            dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[0..<bytes]))
            return 0
        }
        switch (source, target) {
        case (.f32, .bf16): return f32ToBF16(src, dst, elements)
        case (.f32, .f16): return f32ToF16(src, dst, elements)
        case (.bf16, .f32), (.f16, .f32):
            // Exact widening that keeps NaN payloads (the wide path below goes through Double).
            let values = UnsafeMutableBufferPointer<Float>(start: dst.baseAddress!.assumingMemoryBound(to: Float.self), count: elements)
            decodeFloats(source, src, elements: elements, into: values)
            return 0
        default: break
        }
        // Wide path: decode exactly, then round once (via float32 for every target narrower than it, as torch).
        var overflow = 0
        let wide = UnsafeMutableBufferPointer<Double>.allocate(capacity: elements)
        defer { wide.deallocate() }
        decode(source, src, elements: elements, into: wide)
        switch target {
        case .f64:
            for i in 0..<elements { dst.storeBytes(of: wide[i].bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self) }
        case .f32:
            for i in 0..<elements {
                let f = Float(wide[i])
                if f.isInfinite && wide[i].isFinite { overflow += 1 }
                dst.storeBytes(of: f.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
            }
        case .f16, .bf16:
            for i in 0..<elements {
                let f = Float(wide[i])
                var code = target == .f16 ? halfBits(f) : bfloat16Bits(f)
                if target == .bf16 && f.isNaN { code = 0x7FC0 }
                if wide[i].isFinite && code & 0x7FFF == (target == .f16 ? 0x7C00 : 0x7F80) { overflow += 1 }
                dst.storeBytes(of: code.littleEndian, toByteOffset: 2 * i, as: UInt16.self)
            }
        case .f8e8m0:
            for i in 0..<elements {
                let (code, over) = e8m0Code(Float(wide[i]))
                if over || (wide[i].isFinite && !Float(wide[i]).isFinite) { overflow += 1 }
                dst[i] = code
            }
        default:
            let format = miniFloat(target)!
            let packed = target.bitsPerElement < 8
            for i in 0..<elements {
                let f = Float(wide[i])
                var (code, over) = format.encode(f)
                if wide[i].isFinite && f.isInfinite { over = true }
                if over { overflow += 1 }
                if packed { storePacked(dst, bits: target.bitsPerElement, index: i, code: code) } else { dst[i] = code }
            }
        }
        return overflow
    }

    private static func f32ToBF16(_ src: UnsafeRawBufferPointer, _ dst: UnsafeMutableRawBufferPointer, _ n: Int) -> Int {
        narrowFloats(src, dst, n, infinity: 0x7F80, bfloat16Bits)
    }

    private static func f32ToF16(_ src: UnsafeRawBufferPointer, _ dst: UnsafeMutableRawBufferPointer, _ n: Int) -> Int {
        narrowFloats(src, dst, n, infinity: 0x7C00, halfBits)
    }

    /// float32 -> a 16-bit float, counting finite values that became infinite.
    @inline(__always)
    private static func narrowFloats(_ src: UnsafeRawBufferPointer, _ dst: UnsafeMutableRawBufferPointer, _ n: Int,
                                     infinity: UInt16, _ convert: (Float) -> UInt16) -> Int {
        var overflow = 0
        let s = src.baseAddress!
        let d = dst.baseAddress!
        for i in 0..<n {
            let f = Float(bitPattern: s.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
            let code = convert(f)
            overflow &+= (code & 0x7FFF == infinity && f.isFinite) ? 1 : 0
            d.storeBytes(of: code, toByteOffset: 2 * i, as: UInt16.self)
        }
        return overflow
    }
}
