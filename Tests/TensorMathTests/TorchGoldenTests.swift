import XCTest
@testable import TensorMath

/// Forward values and gradients against PyTorch 2.13 (Fixtures/make_goldens.py).
final class TorchGoldenTests: XCTestCase {
    let forwardTolerance: Float = 1e-5
    let gradientTolerance: Float = 1e-5

    func testLinearMatchesTorch() {
        let c = Goldens.named("linear")
        let (x, w, b) = (c.tensor("x"), c.tensor("weight"), c.tensor("bias"))
        assertClose(NN.linear(x, weight: w, bias: b), c.tensor("y"), tolerance: forwardTolerance, "y")
        let g = NN.linearBackward(c.tensor("cot"), input: x, weight: w, hasBias: true)
        assertClose(g.input, c.tensor("dx"), tolerance: gradientTolerance, "dx")
        assertClose(g.weight, c.tensor("dweight"), tolerance: gradientTolerance, "dweight")
        assertClose(g.bias, c.tensor("dbias"), tolerance: gradientTolerance, "dbias")
    }

    func testConvolutionsMatchTorch() {
        for name in ["conv3x3", "conv1x1", "conv3x3s2", "conv3x3s2_padend"] {
            let c = Goldens.named(name)
            let (x, w, b) = (c.tensor("x"), c.tensor("weight"), c.tensor("bias"))
            let (s, p) = (c.int("stride"), c.int("padding"))
            let pe: Int? = c.raw["padding_end"] == nil ? nil : c.int("padding_end")
            // Both the per-image path and the batched-chunk path.
            for chunk in [1, 2] {
                let y = NN.conv2d(x, weight: w, bias: b, stride: s, padding: p, paddingEnd: pe, algorithm: .im2col, imagesPerChunk: chunk)
                assertClose(y, c.tensor("y"), tolerance: forwardTolerance, "\(name) y chunk \(chunk)")
                let g = NN.conv2dBackward(c.tensor("cot"), input: x, weight: w, hasBias: true, stride: s, padding: p,
                                          paddingEnd: pe, needs: .all, algorithm: .im2col, imagesPerChunk: chunk)
                assertClose(g.input, c.tensor("dx"), tolerance: gradientTolerance, "\(name) dx chunk \(chunk)")
                assertClose(g.weight, c.tensor("dweight"), tolerance: gradientTolerance, "\(name) dW chunk \(chunk)")
                assertClose(g.bias, c.tensor("dbias"), tolerance: gradientTolerance, "\(name) db chunk \(chunk)")
            }
        }
    }

    func testWinogradConvolutionMatchesTorchIncludingPartialTiles() {
        // 5x5 maps: the last row and column of 2x2 output tiles are half outside the image.
        let c = Goldens.named("conv3x3")
        let (x, w, b) = (c.tensor("x"), c.tensor("weight"), c.tensor("bias"))
        let y = NN.conv2d(x, weight: w, bias: b, stride: 1, padding: 1, algorithm: .winogradF2, imagesPerChunk: nil)
        assertClose(y, c.tensor("y"), tolerance: forwardTolerance, "y")
        let g = NN.conv2dBackward(c.tensor("cot"), input: x, weight: w, hasBias: true, stride: 1, padding: 1,
                                  needs: .all, algorithm: .winogradF2, imagesPerChunk: nil)
        assertClose(g.input, c.tensor("dx"), tolerance: gradientTolerance, "dx")
        assertClose(g.weight, c.tensor("dweight"), tolerance: gradientTolerance, "dW")
        assertClose(g.bias, c.tensor("dbias"), tolerance: gradientTolerance, "db")
    }

    func testWinogradF4MatchesTorchIncludingPartialTiles() {
        // 5x5 maps are one full 4x4 tile plus a partial one per dimension.
        let c = Goldens.named("conv3x3")
        let (x, w, b) = (c.tensor("x"), c.tensor("weight"), c.tensor("bias"))
        let y = NN.conv2d(x, weight: w, bias: b, stride: 1, padding: 1, algorithm: .winogradF4, imagesPerChunk: nil)
        assertClose(y, c.tensor("y"), tolerance: 5e-5, "y")
        let g = NN.conv2dBackward(c.tensor("cot"), input: x, weight: w, hasBias: true, stride: 1, padding: 1,
                                  needs: .all, algorithm: .winogradF4, imagesPerChunk: nil)
        assertClose(g.input, c.tensor("dx"), tolerance: 5e-5, "dx")
        assertClose(g.weight, c.tensor("dweight"), tolerance: 5e-5, "dW")
        assertClose(g.bias, c.tensor("dbias"), tolerance: gradientTolerance, "db")
    }

    func testWinogradF4AgreesWithIm2colAtUNetSize() {
        var rng = SeededRandom(32)
        let x = rng.tensor([2, 64, 16, 16]), w = rng.tensor([24, 64, 3, 3], scale: 0.05), b = rng.tensor([24])
        let dy = rng.tensor([2, 24, 16, 16])
        let direct = NN.conv2d(x, weight: w, bias: b, stride: 1, padding: 1, algorithm: .im2col, imagesPerChunk: nil)
        let wino = NN.conv2d(x, weight: w, bias: b, stride: 1, padding: 1, algorithm: .winogradF4, imagesPerChunk: nil)
        assertClose(wino, direct, tolerance: 5e-5, "y")
        let gd = NN.conv2dBackward(dy, input: x, weight: w, hasBias: true, stride: 1, padding: 1, needs: .all,
                                   algorithm: .im2col, imagesPerChunk: nil)
        let gw = NN.conv2dBackward(dy, input: x, weight: w, hasBias: true, stride: 1, padding: 1, needs: .all,
                                   algorithm: .winogradF4, imagesPerChunk: nil)
        assertClose(gw.input, gd.input!, tolerance: 5e-5, "dx")
        assertClose(gw.weight, gd.weight!, tolerance: 5e-5, "dW")
    }

    func testWinogradChunksOfImagesAccumulateTheWeightGradient() {
        // 3 images in chunks of 2 + 1: the weight gradient sums the chunks' sgemms.
        var rng = SeededRandom(33)
        let x = rng.tensor([3, 8, 9, 8]), w = rng.tensor([6, 8, 3, 3], scale: 0.2), b = rng.tensor([6])
        let dy = rng.tensor([3, 6, 9, 8])
        let direct = NN.conv2d(x, weight: w, bias: b, stride: 1, padding: 1, algorithm: .im2col, imagesPerChunk: nil)
        let gd = NN.conv2dBackward(dy, input: x, weight: w, hasBias: true, stride: 1, padding: 1, needs: .all,
                                   algorithm: .im2col, imagesPerChunk: nil)
        for algorithm in [ConvAlgorithm.winogradF2, .winogradF4] {
            let tolerance: Float = algorithm == .winogradF2 ? 1e-5 : 5e-5
            let y = NN.conv2d(x, weight: w, bias: b, stride: 1, padding: 1, algorithm: algorithm, imagesPerChunk: 2)
            assertClose(y, direct, tolerance: tolerance, "\(algorithm) y")
            let g = NN.conv2dBackward(dy, input: x, weight: w, hasBias: true, stride: 1, padding: 1, needs: .all,
                                      algorithm: algorithm, imagesPerChunk: 2)
            assertClose(g.input, gd.input!, tolerance: tolerance, "\(algorithm) dx")
            assertClose(g.weight, gd.weight!, tolerance: tolerance, "\(algorithm) dW")
            assertClose(g.bias, gd.bias!, tolerance: 1e-5, "\(algorithm) db")
        }
    }

    func testWinogradAgreesWithIm2colAtUNetSize() {
        var rng = SeededRandom(31)
        let x = rng.tensor([2, 32, 16, 16]), w = rng.tensor([24, 32, 3, 3], scale: 0.1), b = rng.tensor([24])
        let dy = rng.tensor([2, 24, 16, 16])
        let direct = NN.conv2d(x, weight: w, bias: b, stride: 1, padding: 1, algorithm: .im2col, imagesPerChunk: nil)
        let wino = NN.conv2d(x, weight: w, bias: b, stride: 1, padding: 1, algorithm: .winogradF2, imagesPerChunk: nil)
        assertClose(wino, direct, tolerance: 1e-5, "y")
        let gd = NN.conv2dBackward(dy, input: x, weight: w, hasBias: true, stride: 1, padding: 1, needs: .all,
                                   algorithm: .im2col, imagesPerChunk: nil)
        let gw = NN.conv2dBackward(dy, input: x, weight: w, hasBias: true, stride: 1, padding: 1, needs: .all,
                                   algorithm: .winogradF2, imagesPerChunk: nil)
        assertClose(gw.input, gd.input!, tolerance: 1e-5, "dx")
        assertClose(gw.weight, gd.weight!, tolerance: 1e-5, "dW")
    }

    func testGroupNormMatchesTorch() {
        let c = Goldens.named("groupnorm")
        let (x, w, b) = (c.tensor("x"), c.tensor("weight"), c.tensor("bias"))
        let (y, stats) = NN.groupNorm(x, groups: c.int("groups"), weight: w, bias: b, eps: c.float("eps"))
        assertClose(y, c.tensor("y"), tolerance: forwardTolerance, "y")
        let g = NN.groupNormBackward(c.tensor("cot"), input: x, stats: stats, groups: c.int("groups"), weight: w)
        assertClose(g.input, c.tensor("dx"), tolerance: 1e-4, "dx")
        assertClose(g.weight, c.tensor("dweight"), tolerance: gradientTolerance, "dweight")
        assertClose(g.bias, c.tensor("dbias"), tolerance: gradientTolerance, "dbias")
    }

    func testLayerNormMatchesTorch() {
        let c = Goldens.named("layernorm")
        let (x, w, b) = (c.tensor("x"), c.tensor("weight"), c.tensor("bias"))
        let (y, stats) = NN.layerNorm(x, weight: w, bias: b, eps: c.float("eps"))
        assertClose(y, c.tensor("y"), tolerance: forwardTolerance, "y")
        let g = NN.layerNormBackward(c.tensor("cot"), input: x, stats: stats, weight: w)
        assertClose(g.input, c.tensor("dx"), tolerance: 1e-4, "dx")
        assertClose(g.weight, c.tensor("dweight"), tolerance: gradientTolerance, "dweight")
        assertClose(g.bias, c.tensor("dbias"), tolerance: gradientTolerance, "dbias")
    }

    func testActivationsMatchTorch() {
        let silu = Goldens.named("silu")
        assertClose(NN.silu(silu.tensor("x")), silu.tensor("y"), tolerance: forwardTolerance, "silu")
        assertClose(NN.siluBackward(silu.tensor("cot"), input: silu.tensor("x")), silu.tensor("dx"),
                    tolerance: gradientTolerance, "silu dx")
        let gelu = Goldens.named("gelu")
        assertClose(NN.gelu(gelu.tensor("x")), gelu.tensor("y"), tolerance: forwardTolerance, "gelu")
        assertClose(NN.geluBackward(gelu.tensor("cot"), input: gelu.tensor("x")), gelu.tensor("dx"),
                    tolerance: gradientTolerance, "gelu dx")
        let geglu = Goldens.named("geglu")
        assertClose(NN.geglu(geglu.tensor("x")), geglu.tensor("y"), tolerance: forwardTolerance, "geglu")
        assertClose(NN.gegluBackward(geglu.tensor("cot"), input: geglu.tensor("x")), geglu.tensor("dx"),
                    tolerance: gradientTolerance, "geglu dx")
    }

    func testAttentionMatchesTorchSelfAndCross() {
        for name in ["attention_self", "attention_cross"] {
            let c = Goldens.named(name)
            let (q, k, v, h) = (c.tensor("q"), c.tensor("k"), c.tensor("v"), c.int("heads"))
            for (path, rowBlock) in [(.fused, nil), (.fused, 2), (.sgemm, nil), (.sgemm, 2)] as [(NN.AttentionPath, Int?)] {
                let (y, stats) = NN.attention(q: q, k: k, v: v, heads: h, scale: nil, rowBlock: rowBlock, path: path)
                assertClose(y, c.tensor("y"), tolerance: forwardTolerance, "\(name) \(path) y")
                let (dq, dk, dv) = NN.attentionBackward(c.tensor("cot"), q: q, k: k, v: v, heads: h, stats: stats,
                                                        scale: nil, rowBlock: rowBlock)
                assertClose(dq, c.tensor("dq"), tolerance: 1e-4, "\(name) dq")
                assertClose(dk, c.tensor("dk"), tolerance: 1e-4, "\(name) dk")
                assertClose(dv, c.tensor("dv"), tolerance: 1e-4, "\(name) dv")
            }
        }
    }

    /// The fused forward (the automatic choice for >= 1024 keys) equals the sgemm forward, outputs and
    /// log-sum-exp, at widths that leave tails for every lane width and rows that leave a short group.
    func testFusedAttentionEqualsSGEMMAttentionOnLongSequences() {
        var rng = SeededRandom(31)
        let q = rng.tensor([2, 37, 21]), k = rng.tensor([2, 1030, 21]), v = rng.tensor([2, 1030, 15])
        let (fused, fusedStats) = NN.attention(q: q, k: k, v: v, heads: 3, scale: 0.3, rowBlock: nil, path: .automatic)
        let (plain, plainStats) = NN.attention(q: q, k: k, v: v, heads: 3, scale: 0.3, rowBlock: nil, path: .sgemm)
        XCTAssertEqual(fused.shape, [2, 37, 15])
        assertClose(fused, plain, tolerance: 1e-5, "output")
        assertClose(Tensor(shape: [fusedStats.logSumExp.count], data: fusedStats.logSumExp),
                    Tensor(shape: [plainStats.logSumExp.count], data: plainStats.logSumExp), tolerance: 1e-5, "lse")
    }

    func testUpsampleMatchesTorch() {
        let c = Goldens.named("upsample")
        assertClose(NN.upsampleNearest2x(c.tensor("x")), c.tensor("y"), tolerance: 0, "y")
        assertClose(NN.upsampleNearest2xBackward(c.tensor("cot")), c.tensor("dx"), tolerance: 1e-6, "dx")
    }

    func testTimestepEmbeddingMatchesDiffusers() {
        for name in ["timestep_flip_shift0", "timestep_noflip_shift1", "timestep_odd"] {
            let c = Goldens.named(name)
            let y = NN.timestepEmbedding(c.tensor("timesteps").data, dim: c.int("dim"), flipSinToCos: c.bool("flip"),
                                         downscaleFreqShift: c.float("shift"))
            // sin/cos of arguments near 1000 in float32: a few ulps of the argument.
            assertClose(y, c.tensor("y"), tolerance: 2e-5, name)
        }
    }

    func testMSELossAndGradientMatchTorch() {
        let c = Goldens.named("mse")
        let (loss, grad) = NN.mseLoss(c.tensor("x"), c.tensor("target"))
        XCTAssertEqual(loss, c.float("loss"), accuracy: 1e-6 * max(1, abs(c.float("loss"))))
        assertClose(grad, c.tensor("dx"), tolerance: 1e-6, "dx")
    }

    func testAdamWMatchesTorchOverThreeSteps() {
        let c = Goldens.named("adamw")
        var opt = AdamW(learningRate: c.float("lr"), beta1: c.float("beta1"), beta2: c.float("beta2"),
                        eps: c.float("eps"), weightDecay: c.float("weight_decay"))
        var p = c.tensor("p0")
        for g in ["g0", "g1", "g2"] { opt.step("p", parameter: &p, gradient: c.tensor(g)) }
        assertClose(p, c.tensor("p3"), tolerance: 1e-6, "p after 3 steps")
        XCTAssertEqual(opt.states["p"]?.step, 3)
    }
}
