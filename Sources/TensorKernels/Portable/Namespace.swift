/// TensorMath's vector kernels compiled for the platform's baseline (SSE2 on x86-64, NEON on aarch64), 4 lanes.
public enum KernelsPortable {}

typealias Impl = KernelsPortable
typealias V = SIMD4<Float>
typealias VU = SIMD4<UInt32>

extension Impl {
    /// a * b + c as a multiply and an add: the x86-64 baseline has no FMA instruction, and a fused
    /// multiply-add there would be a libm call per lane.
    @inline(__always) static func fma(_ a: V, _ b: V, _ c: V) -> V { a * b + c }
}
