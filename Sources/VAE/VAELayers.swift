import CLIP
import TensorMath

/// A convolution with its weights, loaded by name and shape-checked.
struct Conv: Sendable {
    let weight: Tensor
    let bias: Tensor
    let padding: Int

    init(_ name: String, in cin: Int, out cout: Int, kernel: Int, weights: inout WeightTable) throws(CLIPError) {
        weight = try weights.tensor(name + ".weight", [cout, cin, kernel, kernel])
        bias = try weights.tensor(name + ".bias", [cout])
        padding = kernel / 2
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        NN.conv2d(x, weight: weight, bias: bias, padding: padding)
    }

    /// diffusers' `Downsample2D(padding=0)`: `F.pad(x, (0, 1, 0, 1))`, then the 3x3 conv at stride 2.
    func downsample(_ x: Tensor) -> Tensor {
        NN.conv2d(x, weight: weight, bias: bias, stride: 2, padding: 0, paddingEnd: 1)
    }
}

struct GroupNorm: Sendable {
    let weight: Tensor
    let bias: Tensor
    let groups: Int

    init(_ name: String, channels: Int, groups: Int, weights: inout WeightTable) throws(CLIPError) {
        weight = try weights.tensor(name + ".weight", [channels])
        bias = try weights.tensor(name + ".bias", [channels])
        self.groups = groups
    }

    /// GroupNorm (eps 1e-6, diffusers' VAE value), optionally followed by SiLU.
    func callAsFunction(_ x: Tensor, silu: Bool) -> Tensor {
        let y = NN.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: 1e-6).output
        return silu ? NN.silu(y) : y
    }
}

/// diffusers' `ResnetBlock2D` without a time embedding: x + conv2(silu(norm2(conv1(silu(norm1(x)))))),
/// with a 1x1 `conv_shortcut` on x when the widths differ.
struct VAEResnet: Sendable {
    let norm1, norm2: GroupNorm
    let conv1, conv2: Conv
    let shortcut: Conv?

    init(_ name: String, in cin: Int, out cout: Int, groups: Int, weights: inout WeightTable) throws(CLIPError) {
        norm1 = try GroupNorm(name + ".norm1", channels: cin, groups: groups, weights: &weights)
        conv1 = try Conv(name + ".conv1", in: cin, out: cout, kernel: 3, weights: &weights)
        norm2 = try GroupNorm(name + ".norm2", channels: cout, groups: groups, weights: &weights)
        conv2 = try Conv(name + ".conv2", in: cout, out: cout, kernel: 3, weights: &weights)
        shortcut = cin != cout ? try Conv(name + ".conv_shortcut", in: cin, out: cout, kernel: 1, weights: &weights) : nil
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = conv2(norm2(conv1(norm1(x, silu: true)), silu: true))
        let skip = shortcut.map { $0(x) } ?? x
        h.data.withUnsafeMutableBufferPointer { ph in
            skip.data.withUnsafeBufferPointer { ps in for i in ph.indices { ph[i] += ps[i] } }
        }
        return h
    }
}

/// The mid block's single-head spatial self-attention (diffusers `Attention` with `group_norm`,
/// residual connection, scale 1/sqrt(C)).
struct VAEAttention: Sendable {
    let norm: GroupNorm
    let q, k, v, out: (weight: Tensor, bias: Tensor)

    init(_ name: String, channels c: Int, groups: Int, weights: inout WeightTable) throws(CLIPError) {
        norm = try GroupNorm(name + ".group_norm", channels: c, groups: groups, weights: &weights)
        func linear(_ n: String) throws(CLIPError) -> (weight: Tensor, bias: Tensor) {
            (try weights.tensor(name + "." + n + ".weight", [c, c]), try weights.tensor(name + "." + n + ".bias", [c]))
        }
        q = try linear("to_q")
        k = try linear("to_k")
        v = try linear("to_v")
        out = try linear("to_out.0")
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let normed = norm(x, silu: false)
        // [B, C, HW] -> [B, HW, C]
        let tokens = Tensor(uninitializedShape: [b, h * w, c]) { o in
            normed.data.withUnsafeBufferPointer { p in
                for bi in 0..<b { for ci in 0..<c { for s in 0..<(h * w) { o[(bi * h * w + s) * c + ci] = p[(bi * c + ci) * h * w + s] } } }
            }
        }
        let attended = NN.attention(q: NN.linear(tokens, weight: q.weight, bias: q.bias),
                                    k: NN.linear(tokens, weight: k.weight, bias: k.bias),
                                    v: NN.linear(tokens, weight: v.weight, bias: v.bias), heads: 1).output
        let projected = NN.linear(attended, weight: out.weight, bias: out.bias)
        return Tensor(uninitializedShape: x.shape) { o in
            projected.data.withUnsafeBufferPointer { p in
                x.data.withUnsafeBufferPointer { px in
                    for bi in 0..<b { for ci in 0..<c { for s in 0..<(h * w) {
                        let i = (bi * c + ci) * h * w + s
                        o[i] = p[(bi * h * w + s) * c + ci] + px[i]
                    } } }
                }
            }
        }
    }
}

/// `UNetMidBlock2D` as the VAE uses it: resnet, attention (unless disabled), resnet.
struct VAEMidBlock: Sendable {
    let first, second: VAEResnet
    let attention: VAEAttention?

    init(_ name: String, channels c: Int, groups: Int, attention: Bool, weights: inout WeightTable) throws(CLIPError) {
        first = try VAEResnet(name + ".resnets.0", in: c, out: c, groups: groups, weights: &weights)
        self.attention = attention ? try VAEAttention(name + ".attentions.0", channels: c, groups: groups, weights: &weights) : nil
        second = try VAEResnet(name + ".resnets.1", in: c, out: c, groups: groups, weights: &weights)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = first(x)
        if let attention { h = attention(h) }
        return second(h)
    }
}
