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
