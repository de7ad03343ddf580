// Times TensorMath's conv and attention kernels at the google/ddpm-cifar10-32 UNet's shapes (batch 8) and
// prints GFLOP/s. `compare_torch.py` runs the same shapes through PyTorch and this binary in one run.
// Usage: TensorMathBench [--json] [--cpu] [--only NAME]
import CBLAS
import Foundation
import TensorMath

struct ConvCase {
    let name: String
    let batch, inC, outC, size, kernel, stride, padding, paddingEnd: Int
    var outSize: Int { (size + padding + paddingEnd - kernel) / stride + 1 }
    var flops: Double { 2 * Double(batch * outC * outSize * outSize * inC * kernel * kernel) }
}

struct AttentionCase {
    let name: String
    let batch, tokens, channels, heads: Int
    /// Q K^T and P V.
    var flops: Double { 4 * Double(batch * tokens * tokens * channels) }
}

let convCases: [ConvCase] = [
    ConvCase(name: "conv3x3 128->128 32x32", batch: 8, inC: 128, outC: 128, size: 32, kernel: 3, stride: 1, padding: 1, paddingEnd: 1),
    ConvCase(name: "conv3x3 256->128 32x32", batch: 8, inC: 256, outC: 128, size: 32, kernel: 3, stride: 1, padding: 1, paddingEnd: 1),
    ConvCase(name: "conv3x3 384->128 32x32", batch: 8, inC: 384, outC: 128, size: 32, kernel: 3, stride: 1, padding: 1, paddingEnd: 1),
    ConvCase(name: "conv3x3 128->256 16x16", batch: 8, inC: 128, outC: 256, size: 16, kernel: 3, stride: 1, padding: 1, paddingEnd: 1),
    ConvCase(name: "conv3x3 256->256 16x16", batch: 8, inC: 256, outC: 256, size: 16, kernel: 3, stride: 1, padding: 1, paddingEnd: 1),
    ConvCase(name: "conv3x3 512->256 16x16", batch: 8, inC: 512, outC: 256, size: 16, kernel: 3, stride: 1, padding: 1, paddingEnd: 1),
    ConvCase(name: "conv3x3 256->256 8x8", batch: 8, inC: 256, outC: 256, size: 8, kernel: 3, stride: 1, padding: 1, paddingEnd: 1),
    ConvCase(name: "conv3x3 256->256 4x4", batch: 8, inC: 256, outC: 256, size: 4, kernel: 3, stride: 1, padding: 1, paddingEnd: 1),
    ConvCase(name: "conv3x3s2 128->128 32->16", batch: 8, inC: 128, outC: 128, size: 32, kernel: 3, stride: 2, padding: 0, paddingEnd: 1),
    ConvCase(name: "conv3x3 3->128 32x32 (conv_in)", batch: 8, inC: 3, outC: 128, size: 32, kernel: 3, stride: 1, padding: 1, paddingEnd: 1),
    ConvCase(name: "conv3x3 128->3 32x32 (conv_out)", batch: 8, inC: 128, outC: 3, size: 32, kernel: 3, stride: 1, padding: 1, paddingEnd: 1),
    ConvCase(name: "conv1x1 384->128 32x32", batch: 8, inC: 384, outC: 128, size: 32, kernel: 1, stride: 1, padding: 0, paddingEnd: 0),
    // SD-1.5 inference shapes (batch 1, 64x64 latents): where the weight transform is a large share.
    ConvCase(name: "sd conv3x3 1280->1280 8x8", batch: 1, inC: 1280, outC: 1280, size: 8, kernel: 3, stride: 1, padding: 1, paddingEnd: 1),
    ConvCase(name: "sd conv3x3 1280->1280 16x16", batch: 1, inC: 1280, outC: 1280, size: 16, kernel: 3, stride: 1, padding: 1, paddingEnd: 1),
    ConvCase(name: "sd conv3x3 640->640 32x32", batch: 1, inC: 640, outC: 640, size: 32, kernel: 3, stride: 1, padding: 1, paddingEnd: 1),
    ConvCase(name: "sd conv3x3 320->320 64x64", batch: 1, inC: 320, outC: 320, size: 64, kernel: 3, stride: 1, padding: 1, paddingEnd: 1),
    ConvCase(name: "conv1x1 512->256 8x8", batch: 8, inC: 512, outC: 256, size: 8, kernel: 1, stride: 1, padding: 0, paddingEnd: 0),
]

let attentionCases: [AttentionCase] = [
    AttentionCase(name: "attention 16x16 c256 1 head", batch: 8, tokens: 256, channels: 256, heads: 1),
    AttentionCase(name: "attention 16x16 c256 8 heads", batch: 8, tokens: 256, channels: 256, heads: 8),
    // SD-1.5's first transformer at 64x64 latents, batch 2 (classifier-free guidance).
    AttentionCase(name: "attention 64x64 c320 8 heads", batch: 2, tokens: 4096, channels: 320, heads: 8),
]

/// Every convolution of the google/ddpm-cifar10-32 UNet2DModel at batch 8, as (count, case): read from
/// diffusers 0.42 forward hooks. The stride-2 downsamplers run diffusers' F.pad(0,1,0,1) as paddingEnd.
let cifarConvs: [(Int, ConvCase)] = [
    (7, 128, 128, 3, 1, 1, 1, 32), (1, 128, 128, 3, 2, 0, 1, 32), (1, 128, 256, 1, 1, 0, 0, 16),
    (1, 128, 256, 3, 1, 1, 1, 16), (1, 128, 3, 3, 1, 1, 1, 32), (2, 256, 128, 1, 1, 0, 0, 32),
    (2, 256, 128, 3, 1, 1, 1, 32), (7, 256, 256, 3, 1, 1, 1, 16), (1, 256, 256, 3, 1, 1, 1, 32),
    (11, 256, 256, 3, 1, 1, 1, 4), (8, 256, 256, 3, 1, 1, 1, 8), (1, 256, 256, 3, 2, 0, 1, 16),
    (1, 256, 256, 3, 2, 0, 1, 8), (1, 3, 128, 3, 1, 1, 1, 32), (1, 384, 128, 1, 1, 0, 0, 32),
    (1, 384, 128, 3, 1, 1, 1, 32), (1, 384, 256, 1, 1, 0, 0, 16), (1, 384, 256, 3, 1, 1, 1, 16),
    (2, 512, 256, 1, 1, 0, 0, 16), (3, 512, 256, 1, 1, 0, 0, 4), (3, 512, 256, 1, 1, 0, 0, 8),
    (2, 512, 256, 3, 1, 1, 1, 16), (3, 512, 256, 3, 1, 1, 1, 4), (3, 512, 256, 3, 1, 1, 1, 8),
].map { n, cin, cout, k, s, p, pe, size in
    (n, ConvCase(name: "cifar", batch: 8, inC: cin, outC: cout, size: size, kernel: k, stride: s, padding: p,
                 paddingEnd: pe))
}

let args = CommandLine.arguments
let json = args.contains("--json")
/// Process CPU time divided by the core count instead of wall time: stable when other processes share the
/// machine (it charges only cycles this process ran), blind to idle cores.
let cpuClock = args.contains("--cpu")
let only: String? = args.firstIndex(of: "--only").map { args[$0 + 1] }

func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    var s = seed
    let n = Tensor.elementCount(shape)
    return Tensor(shape: shape, data: (0..<n).map { _ in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: s) >> 40) / Float(1 << 23)
    })
}

/// Fastest run of `body` over repeats filling about `budget` seconds (after one warm-up): the least
/// disturbed by other processes on a shared 2-core machine.
func time(_ budget: Double = 0.6, _ body: () -> Void) -> Double {
    body()
    var samples: [Double] = []
    let start = Date()
    func now() -> Double {
        if cpuClock {
            var ts = timespec()
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
            return (Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9) / Double(ComputeThreads.cores)
        }
        return Double(DispatchTime.now().uptimeNanoseconds) / 1e9
    }
    while samples.count < 3 || (Date().timeIntervalSince(start) < budget && samples.count < 50) {
        let t0 = now()
        body()
        samples.append(now() - t0)
    }
    return samples.min()!
}

func report(_ name: String, _ pass: String, seconds: Double, flops: Double) {
    if json {
        print("{\"name\":\"\(name)\",\"pass\":\"\(pass)\",\"seconds\":\(seconds),\"gflops\":\(flops / seconds / 1e9)}")
    } else {
        print(String(format: "%-32@ %-4@ %8.2f ms %7.1f GFLOP/s", name as NSString, pass as NSString,
                     seconds * 1e3, flops / seconds / 1e9))
    }
}

ComputeThreads.ensureConfigured()
if !json {
    print("OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "(unset)"), "
          + "BLAS core \(BLASCore.current.active) (\(BLASCore.current.origin.rawValue)), kernel set \(KernelSet.active), "
          + "BLAS threads \(dms_blas_get_threads()), cores \(ComputeThreads.cores)")
}

// Plain sgemm as the engine runs it (split over the cores, OpenBLAS single-threaded); only on request.
if only == "sgemm" {
    let n = 2048
    let a = randomTensor([n, n], seed: 5), b = randomTensor([n, n], seed: 6)
    report("sgemm 2048", "fwd", seconds: time(2) { _ = NN.linear(a, weight: b, bias: nil) }, flops: 2 * Double(n * n * n))
}

for c in convCases where only == nil || c.name.contains(only!) {
    let x = randomTensor([c.batch, c.inC, c.size, c.size], seed: 1)
    let w = randomTensor([c.outC, c.inC, c.kernel, c.kernel], seed: 2)
    let b = randomTensor([c.outC], seed: 3)
    let dy = randomTensor([c.batch, c.outC, c.outSize, c.outSize], seed: 4)
    let fwd = time {
        _ = NN.conv2d(x, weight: w, bias: b, stride: c.stride, padding: c.padding, paddingEnd: c.paddingEnd)
    }
    report(c.name, "fwd", seconds: fwd, flops: c.flops)
    if c.kernel == 3 && c.stride == 1 {
        // Frozen weights: the Winograd weight transform comes from a WinogradWeightCache after the warm-up.
        let cache = WinogradWeightCache()
        let cached = NN.withWinogradWeightCache(cache) {
            time { _ = NN.conv2d(x, weight: w, bias: b, stride: c.stride, padding: c.padding, paddingEnd: c.paddingEnd) }
        }
        report(c.name, "fwdc", seconds: cached, flops: c.flops)
    }
    let bwd = time {
        _ = NN.conv2dBackward(dy, input: x, weight: w, hasBias: true, stride: c.stride, padding: c.padding,
                              paddingEnd: c.paddingEnd, needs: .all)
    }
    report(c.name, "bwd", seconds: bwd, flops: 2 * c.flops)
}

for c in attentionCases where only == nil || c.name.contains(only!) {
    let q = randomTensor([c.batch, c.tokens, c.channels], seed: 5)
    let k = randomTensor([c.batch, c.tokens, c.channels], seed: 6)
    let v = randomTensor([c.batch, c.tokens, c.channels], seed: 7)
    let dOut = randomTensor([c.batch, c.tokens, c.channels], seed: 8)
    let fwd = time { _ = NN.attention(q: q, k: k, v: v, heads: c.heads) }
    report(c.name, "fwd", seconds: fwd, flops: c.flops)
    let stats = NN.attention(q: q, k: k, v: v, heads: c.heads).stats
    let bwd = time { _ = NN.attentionBackward(dOut, q: q, k: k, v: v, heads: c.heads, stats: stats) }
    report(c.name, "bwd", seconds: bwd, flops: 2 * c.flops)
}

if only == nil || "cifar-convs".contains(only!) {
    // One forward and one full backward (dx, dW, db) of every conv in the model, timed as a whole.
    let data = cifarConvs.map { n, c in
        (n, c, randomTensor([c.batch, c.inC, c.size, c.size], seed: 1),
         randomTensor([c.outC, c.inC, c.kernel, c.kernel], seed: 2), randomTensor([c.outC], seed: 3),
         randomTensor([c.batch, c.outC, c.outSize, c.outSize], seed: 4))
    }
    let flops = cifarConvs.reduce(0.0) { $0 + Double($1.0) * 3 * $1.1.flops }
    let seconds = time(2) {
        for (n, c, x, w, b, dy) in data {
            for _ in 0..<n {
                _ = NN.conv2d(x, weight: w, bias: b, stride: c.stride, padding: c.padding, paddingEnd: c.paddingEnd)
                _ = NN.conv2dBackward(dy, input: x, weight: w, hasBias: true, stride: c.stride, padding: c.padding,
                                      paddingEnd: c.paddingEnd, needs: .all)
            }
        }
    }
    report("cifar10 UNet all convs", "f+b", seconds: seconds, flops: flops)
}

if only == nil || "norm".contains(only!) || "groupnorm silu".contains(only!) {
    // GroupNorm(32) + SiLU at the largest ResNet activation: memory-bound, so reported as GB/s of the
    // tensor itself (one read + one write per pass would be 2 x 4 bytes per element).
    let x = randomTensor([8, 128, 32, 32], seed: 9)
    let gamma = randomTensor([128], seed: 10), beta = randomTensor([128], seed: 11)
    let dy = randomTensor([8, 128, 32, 32], seed: 12)
    let bytes = Double(x.count * 4)
    let fwd = time {
        let (h, _) = NN.groupNorm(x, groups: 32, weight: gamma, bias: beta, eps: 1e-6)
        _ = NN.silu(h)
    }
    let (h, stats) = NN.groupNorm(x, groups: 32, weight: gamma, bias: beta, eps: 1e-6)
    let bwd = time {
        let dh = NN.siluBackward(dy, input: h)
        _ = NN.groupNormBackward(dh, input: x, stats: stats, groups: 32, weight: gamma)
    }
    for (pass, seconds) in [("fwd", fwd), ("bwd", bwd)] {
        if json {
            print("{\"name\":\"groupnorm+silu 8x128x32x32\",\"pass\":\"\(pass)\",\"seconds\":\(seconds),\"gflops\":0}")
        } else {
            print(String(format: "%-32@ %-4@ %8.2f ms %7.1f GB/s of tensor", "groupnorm+silu 8x128x32x32" as NSString,
                         pass as NSString, seconds * 1e3, bytes / seconds / 1e9))
        }
    }
}
