import CBLAS

/// The vector features this CPU offers and the OS saves on context switches (cpuid + xgetbv), read once.
/// Drives the choice of OpenBLAS core (`BLASCore`) and of TensorMath's own kernel set (`KernelSet`).
public struct CPUFeatures: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let sse3 = CPUFeatures(rawValue: UInt32(DMS_CPU_SSE3))
    public static let avx = CPUFeatures(rawValue: UInt32(DMS_CPU_AVX))
    public static let avx2 = CPUFeatures(rawValue: UInt32(DMS_CPU_AVX2))
    public static let fma = CPUFeatures(rawValue: UInt32(DMS_CPU_FMA))
    public static let avx512f = CPUFeatures(rawValue: UInt32(DMS_CPU_AVX512F))
    public static let avx512bw = CPUFeatures(rawValue: UInt32(DMS_CPU_AVX512BW))
    public static let avx512vl = CPUFeatures(rawValue: UInt32(DMS_CPU_AVX512VL))
    public static let avx512dq = CPUFeatures(rawValue: UInt32(DMS_CPU_AVX512DQ))
    public static let avx512cd = CPUFeatures(rawValue: UInt32(DMS_CPU_AVX512CD))
    public static let avx512bf16 = CPUFeatures(rawValue: UInt32(DMS_CPU_AVX512BF16))
    /// Vendor AMD (OpenBLAS's AVX2 core for AMD is "Zen").
    public static let amd = CPUFeatures(rawValue: UInt32(DMS_CPU_AMD))
    public static let x86 = CPUFeatures(rawValue: UInt32(DMS_CPU_X86))

    /// AVX2 with FMA: what OpenBLAS's Haswell/Zen kernels and TensorMath's AVX2 set need.
    public static let avx2Set: CPUFeatures = [.avx, .avx2, .fma]
    /// The AVX-512 subset of Skylake-SP: what OpenBLAS's SkylakeX kernels and TensorMath's AVX-512 set need.
    public static let avx512Set: CPUFeatures = [.avx2Set, .avx512f, .avx512bw, .avx512vl, .avx512dq, .avx512cd]

    /// This machine's features.
    public static let host = CPUFeatures(rawValue: dms_cpu_features())

    /// Names of the vector features present, for reports ("avx2 fma avx512f ...").
    public var names: [String] {
        let all: [(CPUFeatures, String)] = [
            (.sse3, "sse3"), (.avx, "avx"), (.avx2, "avx2"), (.fma, "fma"), (.avx512f, "avx512f"),
            (.avx512bw, "avx512bw"), (.avx512vl, "avx512vl"), (.avx512dq, "avx512dq"),
            (.avx512cd, "avx512cd"), (.avx512bf16, "avx512_bf16"),
        ]
        return all.filter { contains($0.0) }.map(\.1)
    }
}
