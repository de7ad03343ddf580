import XCTest
@testable import TensorMath

/// Every backward against central finite differences of sum(forward(x) * cotangent).
final class FiniteDifferenceTests: XCTestCase {
    func testLinearBackward() {
        var rng = SeededRandom(1)
        let x = rng.tensor([2, 3, 6]), w = rng.tensor([5, 6], scale: 0.5), b = rng.tensor([5])
        let cot = rng.tensor([2, 3, 5])
        let g = NN.linearBackward(cot, input: x, weight: w, hasBias: true)
        checkGradient("dx", at: x, analytic: g.input) { dot(NN.linear($0, weight: w, bias: b), cot) }
        checkGradient("dW", at: w, analytic: g.weight) { dot(NN.linear(x, weight: $0, bias: b), cot) }
        checkGradient("db", at: b, analytic: g.bias) { dot(NN.linear(x, weight: w, bias: $0), cot) }
    }

    func testConvolutionBackwardAtUNetGeometries() {
        // (kernel, stride, padding): 3x3 same, 1x1, 3x3 stride-2 downsample.
        for (k, s, p) in [(3, 1, 1), (1, 1, 0), (3, 2, 1)] {
            var rng = SeededRandom(UInt64(10 + k + s))
            let x = rng.tensor([3, 4, 6, 5]), w = rng.tensor([3, 4, k, k], scale: 0.3), b = rng.tensor([3])
            let y0 = NN.conv2d(x, weight: w, bias: b, stride: s, padding: p)
            let cot = rng.tensor(y0.shape)
            for chunk in [1, 2, 3] {
                let what = "k\(k) s\(s) chunk \(chunk)"
                let g = NN.conv2dBackward(cot, input: x, weight: w, hasBias: true, stride: s, padding: p,
                                          needs: .all, algorithm: .im2col, imagesPerChunk: chunk)
                func f(_ x: Tensor, _ w: Tensor, _ b: Tensor) -> Double {
                    dot(NN.conv2d(x, weight: w, bias: b, stride: s, padding: p, algorithm: .im2col, imagesPerChunk: chunk), cot)
                }
                checkGradient("\(what) dx", at: x, analytic: g.input, coordinates: 40) { f($0, w, b) }
                checkGradient("\(what) dW", at: w, analytic: g.weight, coordinates: 40) { f(x, $0, b) }
                checkGradient("\(what) db", at: b, analytic: g.bias) { f(x, w, $0) }
            }
        }
    }

    func testWinogradConvolutionBackward() {
        // 7x6 maps: partial tiles for both F(2x2, 3x3) and F(4x4, 3x3).
        for algorithm in [ConvAlgorithm.winogradF2, .winogradF4] {
            var rng = SeededRandom(12)
            let x = rng.tensor([2, 3, 7, 6]), w = rng.tensor([4, 3, 3, 3], scale: 0.3), b = rng.tensor([4])
            let cot = rng.tensor([2, 4, 7, 6])
            let g = NN.conv2dBackward(cot, input: x, weight: w, hasBias: true, stride: 1, padding: 1, needs: .all,
                                      algorithm: algorithm, imagesPerChunk: nil)
            func f(_ x: Tensor, _ w: Tensor) -> Double {
                dot(NN.conv2d(x, weight: w, bias: b, stride: 1, padding: 1, algorithm: algorithm, imagesPerChunk: nil), cot)
            }
            checkGradient("\(algorithm) dx", at: x, analytic: g.input, coordinates: 60) { f($0, w) }
            checkGradient("\(algorithm) dW", at: w, analytic: g.weight, coordinates: 60) { f(x, $0) }
        }
    }

    func testFrozenLayersComputeNoParameterGradients() {
        var rng = SeededRandom(2)
        let x = rng.tensor([2, 4, 5, 5]), w = rng.tensor([3, 4, 3, 3])
        let cot = rng.tensor([2, 3, 5, 5])
        let g = NN.conv2dBackward(cot, input: x, weight: w, hasBias: true, padding: 1, needs: .input)
        XCTAssertNotNil(g.input)
        XCTAssertNil(g.weight)
        XCTAssertNil(g.bias)
        let full = NN.conv2dBackward(cot, input: x, weight: w, hasBias: true, padding: 1, needs: .all)
        XCTAssertEqual(g.input, full.input)
        let onlyParams = NN.linearBackward(rng.tensor([3, 2]), input: rng.tensor([3, 4]), weight: rng.tensor([2, 4]),
                                           hasBias: false, needs: .parameters)
        XCTAssertNil(onlyParams.input)
        XCTAssertNil(onlyParams.bias)
        XCTAssertEqual(onlyParams.weight?.shape, [2, 4])
    }

    func testGroupNormBackwardAffineAndFixedChannelsPerGroup() {
        var rng = SeededRandom(3)
        // 8 channels in 4 groups, then a "pruned" 6-channel input keeping 2 channels per group -> 3 groups.
        for (c, groups) in [(8, 4), (6, 3)] {
            let x = rng.tensor([2, c, 3, 4], scale: 2), w = rng.tensor([c]), b = rng.tensor([c])
            let cot = rng.tensor(x.shape)
            let (_, stats) = NN.groupNorm(x, groups: groups, weight: w, bias: b, eps: 1e-5)
            let g = NN.groupNormBackward(cot, input: x, stats: stats, groups: groups, weight: w)
            func f(_ x: Tensor, _ w: Tensor, _ b: Tensor) -> Double {
                dot(NN.groupNorm(x, groups: groups, weight: w, bias: b, eps: 1e-5).output, cot)
            }
            checkGradient("C\(c) dx", at: x, analytic: g.input, coordinates: 40) { f($0, w, b) }
            checkGradient("C\(c) dgamma", at: w, analytic: g.weight) { f(x, $0, b) }
            checkGradient("C\(c) dbeta", at: b, analytic: g.bias) { f(x, w, $0) }
        }
    }

    func testGroupNormWithoutAffine() {
        var rng = SeededRandom(4)
        let x = rng.tensor([2, 4, 3, 3]), cot = rng.tensor([2, 4, 3, 3])
        let (_, stats) = NN.groupNorm(x, groups: 2, weight: nil, bias: nil, eps: 1e-6)
        let g = NN.groupNormBackward(cot, input: x, stats: stats, groups: 2, weight: nil)
        XCTAssertNil(g.weight)
        checkGradient("dx", at: x, analytic: g.input) { dot(NN.groupNorm($0, groups: 2, weight: nil, bias: nil, eps: 1e-6).output, cot) }
    }

    func testLayerNormBackward() {
        var rng = SeededRandom(5)
        let x = rng.tensor([3, 5, 12]), w = rng.tensor([12]), b = rng.tensor([12]), cot = rng.tensor([3, 5, 12])
        let (_, stats) = NN.layerNorm(x, weight: w, bias: b, eps: 1e-5)
        let g = NN.layerNormBackward(cot, input: x, stats: stats, weight: w)
        func f(_ x: Tensor, _ w: Tensor, _ b: Tensor) -> Double { dot(NN.layerNorm(x, weight: w, bias: b, eps: 1e-5).output, cot) }
        checkGradient("dx", at: x, analytic: g.input, coordinates: 40) { f($0, w, b) }
        checkGradient("dgamma", at: w, analytic: g.weight) { f(x, $0, b) }
        checkGradient("dbeta", at: b, analytic: g.bias) { f(x, w, $0) }
    }

    func testActivationBackwards() {
        var rng = SeededRandom(6)
        let x = rng.tensor([4, 9], scale: 2), cot = rng.tensor([4, 9])
        checkGradient("silu", at: x, analytic: NN.siluBackward(cot, input: x)) { dot(NN.silu($0), cot) }
        checkGradient("gelu", at: x, analytic: NN.geluBackward(cot, input: x)) { dot(NN.gelu($0), cot) }
        let h = rng.tensor([2, 3, 8], scale: 2), cotH = rng.tensor([2, 3, 4])
        checkGradient("geglu", at: h, analytic: NN.gegluBackward(cotH, input: h), coordinates: 48) { dot(NN.geglu($0), cotH) }
    }

    func testAttentionBackwardSelfCrossAndBlocked() {
        // (Sq, Sk, heads, rowBlock): self-attention, cross-attention, and query rows split into blocks.
        // Each through both forwards (their statistics feed the backward).
        let shapes: [(Int, Int, Int, Int?)] = [(6, 6, 2, nil), (5, 7, 3, nil), (9, 4, 2, 4)]
        for path in [NN.AttentionPath.fused, .sgemm] { for (sq, sk, heads, block) in shapes {
            var rng = SeededRandom(UInt64(20 + sq + sk))
            let d = 4
            let q = rng.tensor([2, sq, heads * d]), k = rng.tensor([2, sk, heads * d]), v = rng.tensor([2, sk, heads * d])
            let cot = rng.tensor([2, sq, heads * d])
            let (_, stats) = NN.attention(q: q, k: k, v: v, heads: heads, scale: nil, rowBlock: block, path: path)
            let (dq, dk, dv) = NN.attentionBackward(cot, q: q, k: k, v: v, heads: heads, stats: stats, scale: nil,
                                                    rowBlock: block)
            func f(_ q: Tensor, _ k: Tensor, _ v: Tensor) -> Double {
                dot(NN.attention(q: q, k: k, v: v, heads: heads, scale: nil, rowBlock: block, path: path).output, cot)
            }
            let what = "\(path) Sq\(sq) Sk\(sk) H\(heads)"
            checkGradient("\(what) dq", at: q, analytic: dq, coordinates: 40) { f($0, k, v) }
            checkGradient("\(what) dk", at: k, analytic: dk, coordinates: 40) { f(q, $0, v) }
            checkGradient("\(what) dv", at: v, analytic: dv, coordinates: 40) { f(q, k, $0) }
        } }
    }

    func testUpsampleAndChannelBiasBackwards() {
        var rng = SeededRandom(8)
        let x = rng.tensor([2, 3, 3, 2]), cot = rng.tensor([2, 3, 6, 4])
        checkGradient("upsample", at: x, analytic: NN.upsampleNearest2xBackward(cot)) { dot(NN.upsampleNearest2x($0), cot) }
        let temb = rng.tensor([2, 3]), cotX = rng.tensor([2, 3, 3, 2])
        checkGradient("per-sample bias", at: temb, analytic: NN.addChannelBiasBackward(cotX, perSample: true)) {
            dot(NN.addChannelBias(x, $0), cotX)
        }
        let bias = rng.tensor([3])
        checkGradient("shared bias", at: bias, analytic: NN.addChannelBiasBackward(cotX, perSample: false)) {
            dot(NN.addChannelBias(x, $0), cotX)
        }
    }

    func testConcatSplitAndTokensAreEachOthersBackward() {
        var rng = SeededRandom(9)
        let a = rng.tensor([2, 3, 2, 2]), b = rng.tensor([2, 5, 2, 2])
        let cot = rng.tensor([2, 8, 2, 2])
        let parts = cot.splitChannels([3, 5])
        checkGradient("concat a", at: a, analytic: parts[0]) { dot(Tensor.concatChannels([$0, b]), cot) }
        checkGradient("concat b", at: b, analytic: parts[1]) { dot(Tensor.concatChannels([a, $0]), cot) }
        let cotTokens = rng.tensor([2, 4, 3])
        checkGradient("toTokens", at: a, analytic: cotTokens.fromTokens(height: 2, width: 2)) { dot($0.toTokens(), cotTokens) }
    }

    func testWeightedMSEGradient() {
        var rng = SeededRandom(10)
        let p = rng.tensor([3, 2, 4]), t = rng.tensor([3, 2, 4]), w: [Float] = [0.5, 2, 1]
        let (_, grad) = NN.mseLoss(p, t, sampleWeights: w)
        checkGradient("weighted mse", at: p, analytic: grad) { Double(NN.mseLoss($0, t, sampleWeights: w).loss) }
        // All-ones weights reproduce the plain mean.
        XCTAssertEqual(NN.mseLoss(p, t, sampleWeights: [1, 1, 1]).loss, NN.mseLoss(p, t).loss, accuracy: 1e-6)
    }
}
