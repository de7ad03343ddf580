/// ggml's block quantizations, bit for bit as gguf-py 0.19 `gguf.quants` computes them.
///
/// gguf-py works in float32 numpy: every product, sum and quotient below is one float32 operation in
/// the same order (no fused multiply-add), `d` and `m` are rounded to half to nearest even, and the
/// integer codes are truncated or rounded exactly as its `np.trunc` and `np_roundf` (half away from
/// zero) do. A NaN in a block gives code 0 where numpy's cast is undefined.
public enum GGMLQuants {
    /// Quantizes `blocks` consecutive blocks of `type.blockSize` floats into `type.typeSize` bytes each.
    public static func quantize(_ type: GGMLType, _ src: UnsafePointer<Float>, blocks: Int, into dst: UnsafeMutableRawPointer) {
        let n = type.blockSize
        for b in 0..<blocks {
            let x = src + b * n
            let out = dst + b * type.typeSize
            switch type {
            case .q8_0: q8_0(x, out)
            case .q4_0: symmetric(x, out, divisor: -8, offset: 8.5, maxCode: 15, highBits: false)
            case .q5_0: symmetric(x, out, divisor: -16, offset: 16.5, maxCode: 31, highBits: true)
            case .q4_1: affine(x, out, divisor: 15, maxCode: 15, highBits: false)
            case .q5_1: affine(x, out, divisor: 31, maxCode: 31, highBits: true)
            case .f32: out.storeBytes(of: x.pointee.bitPattern, as: UInt32.self)
            case .f16: out.storeBytes(of: ElementCodec.halfBits(x.pointee).littleEndian, as: UInt16.self)
            case .bf16: out.storeBytes(of: bfloat16Bits(x.pointee).littleEndian, as: UInt16.self)
            case .i8, .i16, .i32, .i64, .f64, .q4_k, .q6_k: preconditionFailure("\(type.name) is not a quantization target")
            }
        }
    }

    /// Decodes `blocks` blocks of a quantized type into `blocks × blockSize` floats.
    public static func dequantize(_ type: GGMLType, _ src: UnsafeRawPointer, blocks: Int, into dst: UnsafeMutablePointer<Float>) {
        let n = type.blockSize
        for b in 0..<blocks {
            let p = src + b * type.typeSize
            let y = dst + b * n
            let d = ElementCodec.float(halfBits: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: type == .q6_k ? 208 : 0, as: UInt16.self)))
            switch type {
            case .q4_k: q4_k(p, d, y)
            case .q6_k: q6_k(p, d, y)
            case .q8_0:
                for j in 0..<32 { y[j] = Float(p.load(fromByteOffset: 2 + j, as: Int8.self)) * d }
            case .q4_0:
                for j in 0..<16 {
                    let byte = p.load(fromByteOffset: 2 + j, as: UInt8.self)
                    y[j] = d * Float(Int(byte & 0x0F) - 8)
                    y[j + 16] = d * Float(Int(byte >> 4) - 8)
                }
            case .q4_1:
                let m = ElementCodec.float(halfBits: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
                for j in 0..<16 {
                    let byte = p.load(fromByteOffset: 4 + j, as: UInt8.self)
                    y[j] = d * Float(byte & 0x0F) + m
                    y[j + 16] = d * Float(byte >> 4) + m
                }
            case .q5_0:
                let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
                for j in 0..<16 {
                    let byte = p.load(fromByteOffset: 6 + j, as: UInt8.self)
                    y[j] = d * Float(Int(byte & 0x0F | UInt8((qh >> j) & 1) << 4) - 16)
                    y[j + 16] = d * Float(Int(byte >> 4 | UInt8((qh >> (j + 16)) & 1) << 4) - 16)
                }
            case .q5_1:
                let m = ElementCodec.float(halfBits: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
                let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
                for j in 0..<16 {
                    let byte = p.load(fromByteOffset: 8 + j, as: UInt8.self)
                    y[j] = d * Float(byte & 0x0F | UInt8((qh >> j) & 1) << 4) + m
                    y[j + 16] = d * Float(byte >> 4 | UInt8((qh >> (j + 16)) & 1) << 4) + m
                }
            case .f32, .f16, .bf16, .i8, .i16, .i32, .i64, .f64:
                preconditionFailure("\(type.name) is not a block type")
            }
        }
    }

    /// Q4_K (256 values): d, dmin: f16; 12 bytes of 6-bit scales and mins for 8 sub-blocks of 32;
    /// 128 bytes of nibbles (sub-block 2g in the low nibbles of bytes 32g..<32g+32, 2g+1 in the high).
    private static func q4_k(_ p: UnsafeRawPointer, _ d: Float, _ y: UnsafeMutablePointer<Float>) {
        let dmin = ElementCodec.float(halfBits: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
        let s = { (i: Int) in p.load(fromByteOffset: 4 + i, as: UInt8.self) }
        for i in 0..<8 {
            let j = i & 3
            let scale = i < 4 ? s(j) & 0x3F : (s(8 + j) & 0x0F) | ((s(j) >> 2) & 0x30)
            let minimum = i < 4 ? s(4 + j) & 0x3F : (s(8 + j) >> 4) | ((s(4 + j) >> 2) & 0x30)
            let dl = d * Float(scale)
            let ml = dmin * Float(minimum)
            for k in 0..<32 {
                let byte = p.load(fromByteOffset: 16 + (i / 2) * 32 + k, as: UInt8.self)
                y[i * 32 + k] = dl * Float((byte >> (4 * UInt8(i & 1))) & 0x0F) - ml
            }
        }
    }

    /// Q6_K (256 values): 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 int8 scales (one
    /// per 16 values), d: f16; code = low | high << 4, minus 32.
    private static func q6_k(_ p: UnsafeRawPointer, _ d: Float, _ y: UnsafeMutablePointer<Float>) {
        for i in 0..<256 {
            let half = i / 128, r = i % 128
            let low = (p.load(fromByteOffset: half * 64 + r % 64, as: UInt8.self) >> (4 * UInt8(r / 64))) & 0x0F
            let high = (p.load(fromByteOffset: 128 + half * 32 + r % 32, as: UInt8.self) >> (2 * UInt8(r / 32))) & 0x03
            let scale = Float(p.load(fromByteOffset: 192 + i / 16, as: Int8.self))
            y[i] = (d * scale) * Float(Int(low | high << 4) - 32)
        }
    }

    /// float32 -> bfloat16 as gguf-py (and ggml's `ggml_compute_fp32_to_bf16`): NaN made quiet keeping
    /// its sign and top payload bits, then round to nearest even.
    @inline(__always)
    public static func bfloat16Bits(_ value: Float) -> UInt16 {
        var n = value.bitPattern
        if n & 0x7FFF_FFFF > 0x7F80_0000 { n = (n & 0xFFFF_0000) | (64 << 16) }
        return UInt16(truncatingIfNeeded: (UInt64(n) + UInt64(0x7FFF + ((n >> 16) & 1))) >> 16)
    }

    /// numpy's float -> unsigned byte code, clipped to `0...maxCode` (NaN gives 0).
    @inline(__always)
    private static func code(_ value: Float, maxCode: Float) -> UInt8 {
        guard value > 0 else { return 0 }
        return UInt8(min(value, maxCode))
    }

    /// Q8_0: d = amax / 127, codes round half away from zero.
    private static func q8_0(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(x[j])) }
        let d = amax / 127
        let id: Float = d == 0 ? 0 : 1 / d
        out.storeBytes(of: ElementCodec.halfBits(d).littleEndian, as: UInt16.self)
        for j in 0..<32 {
            let v = x[j] * id
            let a = abs(v)
            let floored = a.rounded(.down)
            let rounded = floored + (2 * (a - floored)).rounded(.down)
            let q: Int8 = rounded.isNaN ? 0 : Int8(min(127, rounded)) * (v < 0 ? -1 : 1)
            out.storeBytes(of: q, toByteOffset: 2 + j, as: Int8.self)
        }
    }

    /// Q4_0 / Q5_0: d = (value of largest magnitude, first one) / divisor, code = trunc(x / d + offset).
    private static func symmetric(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer, divisor: Float, offset: Float,
                                  maxCode: Float, highBits: Bool) {
        var imax = 0
        var amax = abs(x[0])
        // numpy's argmax: the first largest magnitude, or the first NaN.
        for j in 1..<32 where !amax.isNaN {
            let a = abs(x[j])
            if a > amax || a.isNaN {
                amax = a
                imax = j
            }
        }
        let d = x[imax] / divisor
        let id: Float = d == 0 ? 0 : 1 / d
        out.storeBytes(of: ElementCodec.halfBits(d).littleEndian, as: UInt16.self)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { q in
            for j in 0..<32 { q[j] = code((x[j] * id + offset).rounded(.towardZero), maxCode: maxCode) }
            pack(UnsafeBufferPointer(q), into: out + 2, highBits: highBits)
        }
    }

    /// Q4_1 / Q5_1: d = (max - min) / divisor, m = min, code = trunc((x - min) / d + 0.5).
    private static func affine(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer, divisor: Float, maxCode: Float, highBits: Bool) {
        var hi = x[0]
        var lo = x[0]
        for j in 1..<32 {
            hi = max(hi, x[j])
            lo = min(lo, x[j])
        }
        let d = (hi - lo) / divisor
        let id: Float = d == 0 ? 0 : 1 / d
        out.storeBytes(of: ElementCodec.halfBits(d).littleEndian, as: UInt16.self)
        out.storeBytes(of: ElementCodec.halfBits(lo).littleEndian, toByteOffset: 2, as: UInt16.self)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { q in
            for j in 0..<32 { q[j] = code(((x[j] - lo) * id + 0.5).rounded(.towardZero), maxCode: maxCode) }
            pack(UnsafeBufferPointer(q), into: out + 4, highBits: highBits)
        }
    }

    /// Low nibbles of codes j and j+16 share byte j; with `highBits`, bit 4 of code j goes to bit j of a
    /// little-endian u32 written first (numpy `packbits(..., bitorder="little")`).
    private static func pack(_ q: UnsafeBufferPointer<UInt8>, into out: UnsafeMutableRawPointer, highBits: Bool) {
        var base = out
        if highBits {
            var qh: UInt32 = 0
            for j in 0..<32 { qh |= UInt32((q[j] >> 4) & 1) << j }
            out.storeBytes(of: qh.littleEndian, as: UInt32.self)
            base += 4
        }
        for j in 0..<16 { base.storeBytes(of: (q[j] & 0x0F) | (q[j + 16] << 4), toByteOffset: j, as: UInt8.self) }
    }
}
