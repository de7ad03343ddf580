import Foundation
import TensorKernelsAVX2
import TensorKernelsAVX512
import TensorKernelsPortable

/// Which compiled copy of TensorMath's vector loops runs (see Sources/TensorKernels): chosen once from
/// cpuid, or forced with `DMSURGERY_KERNELS=avx512|avx2|portable` so tests cover every set on one
/// machine. A forced set the CPU cannot run falls back to the best it can (running it would be an
/// illegal instruction).
public enum KernelSet: String, Sendable, CaseIterable, Comparable {
    case portable, avx2, avx512

    public static func < (a: KernelSet, b: KernelSet) -> Bool { a.rank < b.rank }
    private var rank: Int { self == .portable ? 0 : self == .avx2 ? 1 : 2 }

    /// The environment variable that forces a set.
    public static let environmentVariable = "DMSURGERY_KERNELS"

    /// The best set these features run.
    public static func best(for features: CPUFeatures) -> KernelSet {
        if features.contains(.x86), features.isSuperset(of: CPUFeatures.avx512Set) { return .avx512 }
        if features.contains(.x86), features.isSuperset(of: CPUFeatures.avx2Set) { return .avx2 }
        return .portable
    }

    /// The set for this environment and CPU: the forced one if it runs here, else the best.
    public static func choose(environment: [String: String], features: CPUFeatures) -> KernelSet {
        let best = best(for: features)
        guard let forced = environment[environmentVariable].flatMap({ KernelSet(rawValue: $0.lowercased()) }) else {
            return best
        }
        return Swift.min(forced, best)
    }

    /// The set in use by this process.
    public static let active = choose(environment: ProcessInfo.processInfo.environment, features: .host)

    /// This set's loops.
    var kernels: VectorKernels {
        switch self {
        case .avx512: return .avx512
        case .avx2: return .avx2
        case .portable: return .portable
        }
    }
}

/// One compiled copy of the vector loops, as function values: calls go through the table, so nothing
/// of one copy is inlined into TensorMath (which is built for the baseline CPU).
struct VectorKernels: Sendable {
    let shiftedExp: @Sendable (UnsafeMutablePointer<Float>, Int) -> (max: Float, sum: Float)
    let expShifted: @Sendable (UnsafeMutablePointer<Float>, Int, Float) -> Void
    let softmaxBackward: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Float) -> Void
    let silu: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    let siluBackward: @Sendable (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    let affine: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Float, Float) -> Void
    let affineSiLU: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Float, Float) -> Void
    let normInputGradient: @Sendable (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int,
                                      Float, Float, Float) -> Void
    let sum: @Sendable (UnsafePointer<Float>, Int) -> Float
    let sumOfSquares: @Sendable (UnsafePointer<Float>, Int, Float) -> Float
    let sumAndShiftedDot: @Sendable (UnsafePointer<Float>, UnsafePointer<Float>, Int, Float) -> (Float, Float)
    let gelu: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    let geluBackward: @Sendable (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    let geglu: @Sendable (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    let gegluBackward: @Sendable (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                                  UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    /// Padded width of packed keys / values for the fused attention (a multiple of three vectors).
    let attentionKeyStride: @Sendable (Int) -> Int
    /// (q, qStride, rows, kt, kp, depth, scale, scores)
    let attentionScores: @Sendable (UnsafePointer<Float>, Int, Int, UnsafePointer<Float>, Int, Int, Float,
                                    UnsafeMutablePointer<Float>) -> Void
    /// (p, kp, rows, keys, vp, vStride, width, inverse, out, outStride)
    let attentionValues: @Sendable (UnsafePointer<Float>, Int, Int, Int, UnsafePointer<Float>, Int, Int,
                                    UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    /// (p, g, m, v, n, decay, beta1, beta2, stepSize, bc2Sqrt, eps)
    let adamW: @Sendable (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>,
                          UnsafeMutablePointer<Float>, Int, Float, Float, Float, Float, Float, Float) -> Void

    static let avx512 = VectorKernels(
        shiftedExp: KernelsAVX512.shiftedExp(_:count:), expShifted: KernelsAVX512.expShifted(_:count:shift:),
        softmaxBackward: KernelsAVX512.softmaxBackward(_:_:count:dot:), silu: KernelsAVX512.silu(_:_:count:),
        siluBackward: KernelsAVX512.siluBackward(_:_:_:count:), affine: KernelsAVX512.affine(_:_:count:scale:shift:),
        affineSiLU: KernelsAVX512.affineSiLU(_:_:count:scale:shift:),
        normInputGradient: KernelsAVX512.normInputGradient(_:_:_:count:a:b:c:), sum: KernelsAVX512.sum(_:count:),
        sumOfSquares: KernelsAVX512.sumOfSquares(_:count:shift:),
        sumAndShiftedDot: KernelsAVX512.sumAndShiftedDot(_:_:count:shift:), gelu: KernelsAVX512.gelu(_:_:count:),
        geluBackward: KernelsAVX512.geluBackward(_:_:_:count:), geglu: KernelsAVX512.geglu(_:_:_:count:),
        gegluBackward: KernelsAVX512.gegluBackward(_:_:_:_:_:count:),
        attentionKeyStride: KernelsAVX512.attentionKeyStride(_:),
        attentionScores: KernelsAVX512.attentionScores(_:qStride:rows:_:keyStride:depth:scale:into:),
        attentionValues: KernelsAVX512.attentionValues(_:probabilityStride:rows:keys:_:valueStride:width:inverse:into:outputStride:),
        adamW: KernelsAVX512.adamW(_:_:_:_:count:decay:beta1:beta2:stepSize:bc2Sqrt:eps:))

    static let avx2 = VectorKernels(
        shiftedExp: KernelsAVX2.shiftedExp(_:count:), expShifted: KernelsAVX2.expShifted(_:count:shift:),
        softmaxBackward: KernelsAVX2.softmaxBackward(_:_:count:dot:), silu: KernelsAVX2.silu(_:_:count:),
        siluBackward: KernelsAVX2.siluBackward(_:_:_:count:), affine: KernelsAVX2.affine(_:_:count:scale:shift:),
        affineSiLU: KernelsAVX2.affineSiLU(_:_:count:scale:shift:),
        normInputGradient: KernelsAVX2.normInputGradient(_:_:_:count:a:b:c:), sum: KernelsAVX2.sum(_:count:),
        sumOfSquares: KernelsAVX2.sumOfSquares(_:count:shift:),
        sumAndShiftedDot: KernelsAVX2.sumAndShiftedDot(_:_:count:shift:), gelu: KernelsAVX2.gelu(_:_:count:),
        geluBackward: KernelsAVX2.geluBackward(_:_:_:count:), geglu: KernelsAVX2.geglu(_:_:_:count:),
        gegluBackward: KernelsAVX2.gegluBackward(_:_:_:_:_:count:),
        attentionKeyStride: KernelsAVX2.attentionKeyStride(_:),
        attentionScores: KernelsAVX2.attentionScores(_:qStride:rows:_:keyStride:depth:scale:into:),
        attentionValues: KernelsAVX2.attentionValues(_:probabilityStride:rows:keys:_:valueStride:width:inverse:into:outputStride:),
        adamW: KernelsAVX2.adamW(_:_:_:_:count:decay:beta1:beta2:stepSize:bc2Sqrt:eps:))

    static let portable = VectorKernels(
        shiftedExp: KernelsPortable.shiftedExp(_:count:), expShifted: KernelsPortable.expShifted(_:count:shift:),
        softmaxBackward: KernelsPortable.softmaxBackward(_:_:count:dot:), silu: KernelsPortable.silu(_:_:count:),
        siluBackward: KernelsPortable.siluBackward(_:_:_:count:), affine: KernelsPortable.affine(_:_:count:scale:shift:),
        affineSiLU: KernelsPortable.affineSiLU(_:_:count:scale:shift:),
        normInputGradient: KernelsPortable.normInputGradient(_:_:_:count:a:b:c:), sum: KernelsPortable.sum(_:count:),
        sumOfSquares: KernelsPortable.sumOfSquares(_:count:shift:),
        sumAndShiftedDot: KernelsPortable.sumAndShiftedDot(_:_:count:shift:), gelu: KernelsPortable.gelu(_:_:count:),
        geluBackward: KernelsPortable.geluBackward(_:_:_:count:), geglu: KernelsPortable.geglu(_:_:_:count:),
        gegluBackward: KernelsPortable.gegluBackward(_:_:_:_:_:count:),
        attentionKeyStride: KernelsPortable.attentionKeyStride(_:),
        attentionScores: KernelsPortable.attentionScores(_:qStride:rows:_:keyStride:depth:scale:into:),
        attentionValues: KernelsPortable.attentionValues(_:probabilityStride:rows:keys:_:valueStride:width:inverse:into:outputStride:),
        adamW: KernelsPortable.adamW(_:_:_:_:count:decay:beta1:beta2:stepSize:bc2Sqrt:eps:))

    /// The table of the process's kernel set.
    static let active = KernelSet.active.kernels
}
