import CBLAS

/// The layer kernels: each a forward function and a backward function with hand-written gradients.
///
/// Conventions shared by every kernel:
/// - Parameters use PyTorch's layouts (Linear weight [out, in], Conv2d weight [out, in, kh, kw]), so
///   checkpoint tensors are used as stored.
/// - A backward takes the output gradient plus what the forward needed (its input, and for the norms
///   and attention the small statistics the forward returned) and returns fresh gradients; nothing is
///   accumulated in place. `needs` picks what to compute: a frozen layer asks for `.input` only and
///   no parameter-gradient memory is allocated or touched.
/// - Shape errors are programming errors and stop the process with a message naming both shapes.
public enum NN {}

/// Which gradients a backward call should compute.
public struct GradientNeeds: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// The gradient with respect to the layer's input.
    public static let input = GradientNeeds(rawValue: 1)
    /// Gradients with respect to the layer's weight and bias (when it has them).
    public static let parameters = GradientNeeds(rawValue: 2)
    public static let all: GradientNeeds = [.input, .parameters]
}

/// What a layer backward returns; a field is nil when it was not requested or the layer lacks it.
public struct LayerGradients: Sendable {
    public var input: Tensor?
    public var weight: Tensor?
    public var bias: Tensor?
    public init(input: Tensor? = nil, weight: Tensor? = nil, bias: Tensor? = nil) {
        self.input = input
        self.weight = weight
        self.bias = bias
    }
}

/// Row-major sgemm: C[m,n] = alpha * op(A) * op(B) + beta * C, with leading dimensions in elements.
@inline(__always)
func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// sgemm split across the cores along its larger output dimension (OpenBLAS itself runs single-threaded;
/// see `ComputeThreads`). Small products run on the calling thread.
func sgemmParallel(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                   a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                   beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    let parts = ComputeThreads.cores
    if parts <= 1 || Double(m) * Double(n) * Double(k) < 2e6 || (m < 32 && n < 32) {
        sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
              beta: beta, c: c, ldc: ldc)
        return
    }
    // Split boundaries on multiples of 16 so each part keeps whole micro-kernel panels.
    func bound(_ total: Int, _ i: Int) -> Int { i == parts ? total : Swift.min(total, (total * i / parts + 8) / 16 * 16) }
    if n >= m {
        Parallel.forRanges(parts) { range in
            for i in range {
                let (n0, n1) = (bound(n, i), bound(n, i + 1))
                if n0 >= n1 { continue }
                // Columns n0..<n1 of op(B): column offset in B, or row offset when B is transposed.
                let bOff = transB ? n0 * ldb : n0
                sgemm(transA: transA, transB: transB, m: m, n: n1 - n0, k: k, alpha: alpha, a: a, lda: lda,
                      b: b + bOff, ldb: ldb, beta: beta, c: c + n0, ldc: ldc)
            }
        }
    } else {
        Parallel.forRanges(parts) { range in
            for i in range {
                let (m0, m1) = (bound(m, i), bound(m, i + 1))
                if m0 >= m1 { continue }
                // Rows m0..<m1 of op(A): row offset in A, or column offset when A is transposed.
                let aOff = transA ? m0 : m0 * lda
                sgemm(transA: transA, transB: transB, m: m1 - m0, n: n, k: k, alpha: alpha, a: a + aOff, lda: lda,
                      b: b, ldb: ldb, beta: beta, c: c + m0 * ldc, ldc: ldc)
            }
        }
    }
}
