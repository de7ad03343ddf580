import XCTest
@testable import TensorMath

/// Every compiled copy of the vector loops that this CPU can run gives the scalar reference's results,
/// at lengths that leave tails for every lane width, and the choice of set honours DMSURGERY_KERNELS.
final class KernelSetTests: XCTestCase {
    func testForcedSetIsUsedOnlyWhereTheCPUCanRunIt() {
        let avx512: CPUFeatures = [.x86, .avx512Set], avx2: CPUFeatures = [.x86, .avx2Set]
        XCTAssertEqual(KernelSet.choose(environment: [:], features: avx512), .avx512)
        XCTAssertEqual(KernelSet.choose(environment: [:], features: avx2), .avx2)
        XCTAssertEqual(KernelSet.choose(environment: [:], features: [.x86, .sse3, .avx]), .portable)
        XCTAssertEqual(KernelSet.choose(environment: [:], features: []), .portable, "not x86")
        XCTAssertEqual(KernelSet.choose(environment: ["DMSURGERY_KERNELS": "portable"], features: avx512), .portable)
        XCTAssertEqual(KernelSet.choose(environment: ["DMSURGERY_KERNELS": "AVX2"], features: avx512), .avx2)
        XCTAssertEqual(KernelSet.choose(environment: ["DMSURGERY_KERNELS": "avx512"], features: avx2), .avx2,
                       "a set the CPU lacks would be an illegal instruction")
        XCTAssertEqual(KernelSet.choose(environment: ["DMSURGERY_KERNELS": "bogus"], features: avx2), .avx2)
    }

    func testEveryRunnableSetMatchesTheScalarReference() {
        let runnable = KernelSet.allCases.filter { $0 <= KernelSet.best(for: .host) }
        var rng = SeededRandom(7)
        for set in runnable {
            let k = set.kernels
            for n in [1, 3, 4, 7, 8, 15, 16, 17, 33, 100] {
                let what = "\(set) n=\(n)"
                let x = rng.tensor([n], scale: 4).data, y = rng.tensor([n]).data
                var out = [Float](repeating: 0, count: n)

                k.silu(x, &out, n)
                assertClose(out, x.map { $0 / (1 + Foundation.exp(-$0)) }, what + " silu")
                k.siluBackward(y, x, &out, n)
                assertClose(out, zip(y, x).map { g, v in
                    let s = 1 / (1 + Foundation.exp(-v))
                    return g * s * (1 + v * (1 - s))
                }, what + " siluBackward")
                k.affine(x, &out, n, 0.5, -1)
                assertClose(out, x.map { $0 * 0.5 - 1 }, what + " affine")
                k.affineSiLU(x, &out, n, 0.5, -1)
                assertClose(out, x.map { let z = $0 * 0.5 - 1; return z / (1 + Foundation.exp(-z)) }, what + " affineSiLU")
                k.normInputGradient(y, x, &out, n, 2, 0.25, 0.5)
                assertClose(out, zip(y, x).map { 2 * $0 - 0.5 - 0.25 * $1 }, what + " normInputGradient")

                var row = x
                let (m, s) = k.shiftedExp(&row, n)
                XCTAssertEqual(m, x.max()!, what)
                let expected = x.map { Foundation.exp($0 - x.max()!) }
                assertClose(row, expected, what + " shiftedExp")
                XCTAssertEqual(s, expected.reduce(0, +), accuracy: 1e-5 * Float(n), what)
                row = x
                k.expShifted(&row, n, 1.5)
                assertClose(row, x.map { Foundation.exp($0 - 1.5) }, what + " expShifted")
                var dp = y
                k.softmaxBackward(expected, &dp, n, 0.3)
                assertClose(dp, zip(expected, y).map { $0 * ($1 - 0.3) }, what + " softmaxBackward")

                k.gelu(x, &out, n)
                assertClose(out, x.map(geluReference), what + " gelu", tolerance: 2e-6, absolute: 2e-6)
                k.geluBackward(y, x, &out, n)
                assertClose(out, zip(y, x).map { $0 * geluDerivativeReference($1) }, what + " geluBackward",
                            tolerance: 2e-6, absolute: 2e-6)
                k.geglu(y, x, &out, n)
                assertClose(out, zip(y, x).map { $0 * geluReference($1) }, what + " geglu", tolerance: 2e-6, absolute: 2e-6)
                let dy = rng.tensor([n]).data
                var dHidden = [Float](repeating: 0, count: n), dGate = dHidden
                k.gegluBackward(dy, y, x, &dHidden, &dGate, n)
                assertClose(dHidden, (0..<n).map { dy[$0] * geluReference(x[$0]) }, what + " gegluBackward hidden",
                            tolerance: 2e-6, absolute: 2e-6)
                assertClose(dGate, (0..<n).map { dy[$0] * y[$0] * geluDerivativeReference(x[$0]) },
                            what + " gegluBackward gate", tolerance: 2e-6, absolute: 2e-6)

                var param = x, mom = y, vel = y.map { $0 * $0 }
                k.adamW(&param, dy, &mom, &vel, n, 0.999, 0.9, 0.99, 0.01, 0.3, 1e-8)
                let m1 = zip(y, dy).map { 0.9 * $0 + 0.1 * $1 }
                let v1 = zip(y, dy).map { 0.99 * $0 * $0 + 0.01 * $1 * $1 }
                assertClose(mom, m1, what + " adamW m")
                assertClose(vel, v1, what + " adamW v")
                assertClose(param, (0..<n).map { x[$0] * 0.999 - 0.01 * m1[$0] / (v1[$0].squareRoot() / 0.3 + 1e-8) },
                            what + " adamW p")

                let sum = x.reduce(0, +)
                XCTAssertEqual(k.sum(x, n), sum, accuracy: 1e-5 * Float(n) * 4, what + " sum")
                XCTAssertEqual(k.sumOfSquares(x, n, 0.5), x.map { ($0 - 0.5) * ($0 - 0.5) }.reduce(0, +),
                               accuracy: 1e-4 * Float(n) * 16, what + " sumOfSquares")
                let (s0, s1) = k.sumAndShiftedDot(y, x, n, 0.5)
                XCTAssertEqual(s0, y.reduce(0, +), accuracy: 1e-5 * Float(n), what)
                XCTAssertEqual(s1, zip(y, x).map { $0 * ($1 - 0.5) }.reduce(0, +), accuracy: 1e-5 * Float(n) * 4, what)
            }
        }
    }

    /// GELU (erf form) and its derivative in double precision.
    private func geluReference(_ x: Float) -> Float { Float(0.5 * Double(x) * (1 + Foundation.erf(Double(x) / 2.0.squareRoot()))) }

    private func geluDerivativeReference(_ x: Float) -> Float {
        let v = Double(x)
        return Float(0.5 * (1 + Foundation.erf(v / 2.0.squareRoot())) + v * Foundation.exp(-0.5 * v * v) / (2 * Double.pi).squareRoot())
    }

    /// |a - b| <= tolerance * max(1, |b|) + absolute per element.
    private func assertClose(_ a: [Float], _ b: [Float], _ what: String, tolerance: Float = 2e-6, absolute: Float = 0,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        for (i, (u, v)) in zip(a, b).enumerated() where abs(u - v) > tolerance * Swift.max(1, abs(v)) + absolute {
            XCTFail("\(what): [\(i)] \(u) vs \(v)", file: file, line: line)
            return
        }
    }
}

/// The fused inference GroupNorm + SiLU is the two-step forward.
final class FusedGroupNormSiLUTests: XCTestCase {
    func testFusedGroupNormSiLUEqualsGroupNormThenSiLU() {
        var rng = SeededRandom(9)
        let x = rng.tensor([2, 6, 5, 3], scale: 3), w = rng.tensor([6]), b = rng.tensor([6])
        let fused = NN.groupNormSiLU(x, groups: 3, weight: w, bias: b, eps: 1e-5)
        let twoStep = NN.silu(NN.groupNorm(x, groups: 3, weight: w, bias: b, eps: 1e-5).output)
        XCTAssertLessThanOrEqual(relativeMaxError(fused, twoStep), 1e-6)
        let plain = NN.groupNormSiLU(x, groups: 2, weight: nil, bias: nil, eps: 1e-6)
        XCTAssertLessThanOrEqual(relativeMaxError(plain, NN.silu(NN.groupNorm(x, groups: 2, weight: nil, bias: nil, eps: 1e-6).output)), 1e-6)
    }
}
