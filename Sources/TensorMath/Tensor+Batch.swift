/// Batch (dim 0) helpers the samplers and training loops share: picking items, repeating one, joining
/// and splitting batches (a CFG pass runs the unconditional and conditional halves as one batch).
extension Tensor {
    /// The items `indices` of dim 0, in that order (repeats allowed).
    public func items(_ indices: [Int]) -> Tensor {
        let per = count / Swift.max(1, shape[0])
        var out = [Float]()
        out.reserveCapacity(per * indices.count)
        for i in indices { out.append(contentsOf: data[i * per..<(i + 1) * per]) }
        return Tensor(shape: [indices.count] + shape.dropFirst(), data: out)
    }

    /// `self` repeated `n` times along a new leading dim.
    public func repeatedItem(_ n: Int) -> Tensor {
        var out = [Float]()
        out.reserveCapacity(count * n)
        for _ in 0..<n { out.append(contentsOf: data) }
        return Tensor(shape: [n] + shape, data: out)
    }

    /// Concatenation along dim 0.
    public static func joined(_ parts: [Tensor]) -> Tensor {
        Tensor(shape: [parts.reduce(0) { $0 + $1.shape[0] }] + parts[0].shape.dropFirst(),
               data: Array(parts.map(\.data).joined()))
    }

    /// The two halves of dim 0.
    public func halves() -> (Tensor, Tensor) {
        let half = count / 2, b = shape[0] / 2
        let rest = Array(shape.dropFirst())
        return (Tensor(shape: [b] + rest, data: Array(data[..<half])), Tensor(shape: [b] + rest, data: Array(data[half...])))
    }
}
