/// A dense float32 tensor: a shape and its elements in row-major order (NCHW for images).
///
/// A plain value type: copies share storage until one of them writes (Swift's copy-on-write arrays),
/// so passing tensors around costs nothing; kernels write into fresh storage and never mutate inputs.
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Float]

    /// A tensor over `data`; the element count must equal the product of `shape` (rank 0 holds 1 element).
    public init(shape: [Int], data: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(Tensor.elementCount(shape) == data.count,
                     "shape \(shape) needs \(Tensor.elementCount(shape)) elements, got \(data.count)")
        self.shape = shape
        self.data = data
    }

    /// A tensor of zeros.
    public init(zeros shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: 0, count: Tensor.elementCount(shape)))
    }

    /// A tensor with every element equal to `value`.
    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: value, count: Tensor.elementCount(shape)))
    }

    /// A tensor whose storage `fill` must write completely; skips the zeroing pass that
    /// `init(zeros:)` pays, which matters for the large activations kernels produce.
    @inlinable
    public init(uninitializedShape shape: [Int], fill: (UnsafeMutableBufferPointer<Float>) -> Void) {
        // Every kernel allocates its result here, so this is where the process-wide setup happens once.
        ComputeThreads.ensureConfigured()
        let n = Tensor.elementCount(shape)
        self.shape = shape
        self.data = [Float](unsafeUninitializedCapacity: n) { buffer, initialized in
            fill(buffer)
            initialized = n
        }
    }

    /// Number of elements.
    @inlinable public var count: Int { data.count }

    /// Number of dimensions.
    @inlinable public var rank: Int { shape.count }

    @inlinable
    public static func elementCount(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    /// The same elements under another shape; one dimension may be -1 (inferred).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            s[i] = count / known
        }
        precondition(Tensor.elementCount(s) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: s, data: data)
    }
}
