/// TensorMath's vector kernels compiled for the platform's baseline (SSE2 on x86-64, NEON on aarch64), 4 lanes.
public enum KernelsPortable {}

typealias Impl = KernelsPortable
typealias V = SIMD4<Float>
typealias VU = SIMD4<UInt32>
