/// TensorMath's vector kernels compiled for AVX2 + FMA (x86-64-v3), 8 lanes.
public enum KernelsAVX2 {}

typealias Impl = KernelsAVX2
typealias V = SIMD8<Float>
typealias VU = SIMD8<UInt32>
