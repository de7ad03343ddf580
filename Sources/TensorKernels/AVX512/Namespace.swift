/// TensorMath's vector kernels compiled for AVX-512 (x86-64-v4: F, CD, BW, DQ, VL), 16 lanes.
public enum KernelsAVX512 {}

typealias Impl = KernelsAVX512
typealias V = SIMD16<Float>
typealias VU = SIMD16<UInt32>

extension Impl {
    /// a * b + c in one rounding (the target has FMA: one vfmadd per vector).
    @inline(__always) static func fma(_ a: V, _ b: V, _ c: V) -> V { c.addingProduct(a, b) }
}
