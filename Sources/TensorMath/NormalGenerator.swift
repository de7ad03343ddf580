import Foundation

/// Deterministic random draws (SplitMix64; normals by Box-Muller, both values of each pair used) for
/// benchmarks, samplers and training. The whole state is one integer, so a training checkpoint can store
/// it and a resumed run draws exactly what the uninterrupted run would have drawn.
public struct NormalGenerator: Sendable, Equatable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    /// A uniform double in (0, 1).
    public mutating func uniform() -> Double {
        var generator = SplitMix64(state: state)
        let z = generator.next()
        state = generator.state
        return (Double(z >> 11) + 0.5) / Double(1 << 53)
    }

    /// Standard normal samples.
    public mutating func tensor(_ shape: [Int]) -> Tensor {
        let n = shape.reduce(1, *)
        var data = [Float](repeating: 0, count: n)
        var i = 0
        while i < n {
            let r = (-2 * log(uniform())).squareRoot(), theta = 2 * Double.pi * uniform()
            data[i] = Float(r * cos(theta))
            if i + 1 < n { data[i + 1] = Float(r * sin(theta)) }
            i += 2
        }
        return Tensor(shape: shape, data: data)
    }

    /// `count` integers uniform in 0..<bound.
    public mutating func integers(_ count: Int, below bound: Int) -> [Int] {
        (0..<count).map { _ in min(bound - 1, Int(uniform() * Double(bound))) }
    }
}
