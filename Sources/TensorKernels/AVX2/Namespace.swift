/// TensorMath's vector kernels compiled for AVX2 + FMA (x86-64-v3), 8 lanes.
public enum KernelsAVX2 {}

typealias Impl = KernelsAVX2
typealias V = SIMD8<Float>
typealias VU = SIMD8<UInt32>

extension Impl {
    /// a * b + c in one rounding (the target has FMA: one vfmadd per vector).
    @inline(__always) static func fma(_ a: V, _ b: V, _ c: V) -> V { c.addingProduct(a, b) }
}
