import Foundation
import TensorMath

/// Every random draw of a training run (batch indices, timesteps, noise, CFG dropout) comes from one
/// SplitMix64 stream whose whole state is one integer, so a checkpoint can store it and a resumed run
/// draws exactly what the uninterrupted run would have drawn.
public struct TrainingRandom: Sendable, Equatable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// A uniform double in (0, 1).
    public mutating func uniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return (Double(z >> 11) + 0.5) / Double(1 << 53)
    }

    /// Standard normal samples (Box-Muller, both values of each pair used).
    public mutating func normal(_ shape: [Int]) -> Tensor {
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

extension Tensor {
    /// The items `indices` of dim 0, in that order (repeats allowed).
    func items(_ indices: [Int]) -> Tensor {
        let per = count / Swift.max(1, shape[0])
        var out = [Float]()
        out.reserveCapacity(per * indices.count)
        for i in indices { out.append(contentsOf: data[i * per..<(i + 1) * per]) }
        return Tensor(shape: [indices.count] + shape.dropFirst(), data: out)
    }

    /// `self` repeated `n` times along a new leading dim.
    func repeatedItem(_ n: Int) -> Tensor {
        var out = [Float]()
        out.reserveCapacity(count * n)
        for _ in 0..<n { out.append(contentsOf: data) }
        return Tensor(shape: [n] + shape, data: out)
    }

    /// Concatenation along dim 0.
    static func joined(_ parts: [Tensor]) -> Tensor {
        Tensor(shape: [parts.reduce(0) { $0 + $1.shape[0] }] + parts[0].shape.dropFirst(),
               data: Array(parts.map(\.data).joined()))
    }

    /// The two halves of dim 0.
    func halves() -> (Tensor, Tensor) {
        let half = count / 2, b = shape[0] / 2
        let rest = Array(shape.dropFirst())
        return (Tensor(shape: [b] + rest, data: Array(data[..<half])), Tensor(shape: [b] + rest, data: Array(data[half...])))
    }
}
