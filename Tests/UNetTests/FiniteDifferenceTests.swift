import Foundation
import TensorMath
import XCTest
@testable import UNet

/// The composed backward (every block's hand-written reverse pass) against central differences of
/// L = sum(output * cotangent) along random directions of the inputs and of every parameter at once.
final class FiniteDifferenceTests: XCTestCase {
    private func dot(_ a: Tensor, _ b: Tensor) -> Double {
        zip(a.data, b.data).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    }

    private func direction(_ shape: [Int], seed: inout UInt64) -> Tensor {
        var g = SplitMix64(state: seed)
        seed &+= 1
        return Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in Float(g.next() >> 40) / Float(1 << 24) * 2 - 1 })
    }

    func testBackwardMatchesCentralDifferences() throws {
        for name in ["ddpm_cifar_like", "cond_pruned"] {
            let f = try ParityTests.load(name)
            let x = f.io["sample"]!, ts = f.io["timestep"]!.data, c = f.io["encoder_hidden_states"], cot = f.io["cotangent"]!
            var seed: UInt64 = 7
            let dx = direction(x.shape, seed: &seed)
            let dc = c.map { direction($0.shape, seed: &seed) }
            var dp: [String: Tensor] = [:]
            for (k, v) in f.model.parameters.sorted(by: { $0.key < $1.key }) { dp[k] = direction(v.shape, seed: &seed) }

            let (_, tape) = try f.model.forward(sample: x, timesteps: ts, encoderHiddenStates: c, recording: true)
            let g = f.model.backward(tape!, outputGradient: cot, parameterGradients: true)
            var analytic = dot(g.sample, dx)
            if let dc, let gc = g.encoderHiddenStates { analytic += dot(gc, dc) }
            for (k, v) in dp { analytic += dot(g.parameters[k]!, v) }

            func loss(_ eps: Float) throws -> Double {
                var m = f.model
                m.updateParameters { k, p in p.add(dp[k]!, scaledBy: eps) }
                var xs = x
                xs.add(dx, scaledBy: eps)
                var cs = c
                if let dc { cs!.add(dc, scaledBy: eps) }
                return dot(try m(sample: xs, timesteps: ts, encoderHiddenStates: cs), cot)
            }
            let eps: Float = 1e-3
            let numeric = (try loss(eps) - loss(-eps)) / Double(2 * eps)
            let rel = abs(numeric - analytic) / max(abs(analytic), 1e-6)
            print("finite differences \(name): analytic \(analytic), numeric \(numeric), rel \(rel)")
            XCTAssertLessThan(rel, 2e-2, "\(name): analytic \(analytic) vs numeric \(numeric)")
        }
    }
}
