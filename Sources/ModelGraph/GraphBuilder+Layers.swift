/// The layers diffusion models are made of, as standard operators that ONNX Runtime's CPU provider runs.
extension GraphBuilder {
    /// `nn.Linear`: MatMul with the weight stored transposed ([in, out], under its checkpoint name), then
    /// the bias. Readers map a MatMul's B initializer back to the checkpoint by transposing it.
    public mutating func linear(_ x: String, weight: String, bias: String?, in inFeatures: Int, out outFeatures: Int,
                                scope: String) throws -> String {
        let w = try self.weight(weight, expected: [outFeatures, inFeatures], transposed: true)
        let y = op("MatMul", [x, w], scope: scope)
        guard let bias else { return y }
        return op("Add", [y, try self.weight(bias, expected: [outFeatures])], scope: scope)
    }

    /// `nn.Conv2d` with a square kernel; `padBottomRight` pads only after each spatial axis (diffusers'
    /// Downsample2D with padding 0).
    public mutating func conv(_ x: String, weight: String, bias: String?, in inChannels: Int, out outChannels: Int,
                              kernel: Int, stride: Int = 1, padding: Int, padBottomRight: Bool = false, scope: String) throws -> String {
        let w = try self.weight(weight, expected: [outChannels, inChannels, kernel, kernel])
        var inputs = [x, w]
        if let bias { inputs.append(try self.weight(bias, expected: [outChannels])) }
        let pads = padBottomRight ? [0, 0, 1, 1] : [padding, padding, padding, padding]
        return op("Conv", inputs, scope: scope, [("kernel_shape", .ints([kernel, kernel])), ("pads", .ints(pads)),
                                                 ("strides", .ints([stride, stride]))])
    }

    /// `nn.GroupNorm` (affine): the channels reshaped to [B, groups, rest], InstanceNormalization over
    /// each group (unit scale, zero shift), reshaped back, then the per-channel scale and shift.
    public mutating func groupNorm(_ x: String, weight: String, bias: String, channels: Int, groups: Int, eps: Float,
                                   scope: String) throws -> String {
        let w = try self.weight(weight, expected: [channels]), b = try self.weight(bias, expected: [channels])
        let grouped = op("Reshape", [x, int64s([0, groups, -1])], scope: scope)
        let ones = floats(Array(repeating: 1, count: groups), shape: [groups], name: "ones_\(groups)")
        let zeros = floats(Array(repeating: 0, count: groups), shape: [groups], name: "zeros_\(groups)")
        let normed = op("InstanceNormalization", [grouped, ones, zeros], scope: scope, [("epsilon", .float(eps))])
        let back = op("Reshape", [normed, op("Shape", [x], scope: scope)], scope: scope)
        let axes = int64s([1, 2])
        let scaled = op("Mul", [back, op("Unsqueeze", [w, axes], scope: scope)], scope: scope)
        return op("Add", [scaled, op("Unsqueeze", [b, axes], scope: scope)], scope: scope)
    }

    /// `nn.LayerNorm` over the last axis.
    public mutating func layerNorm(_ x: String, weight: String, bias: String, dim: Int, eps: Float, scope: String) throws -> String {
        op("LayerNormalization", [x, try self.weight(weight, expected: [dim]), try self.weight(bias, expected: [dim])], scope: scope,
           [("axis", .int(-1)), ("epsilon", .float(eps))])
    }

    /// SiLU, x * sigmoid(x) (the standard set has no SiLU operator at opset 21).
    public mutating func silu(_ x: String, scope: String) -> String {
        op("Mul", [x, op("Sigmoid", [x], scope: scope)], scope: scope)
    }

    /// Exact GELU, 0.5 x (1 + erf(x / sqrt 2)) (torch's default, approximate="none").
    public mutating func gelu(_ x: String, scope: String) -> String {
        let e = op("Erf", [op("Div", [x, scalar(Float(2).squareRoot())], scope: scope)], scope: scope)
        let half = op("Mul", [x, scalar(0.5)], scope: scope)
        return op("Mul", [half, op("Add", [e, scalar(1)], scope: scope)], scope: scope)
    }

    /// Multi-head attention on tokens: q [B, S, heads * d], k and v [B, T, heads * d] -> [B, S, heads * d],
    /// softmax(q k^T / sqrt(d) + mask) v per head; `mask` is added to the scores when given.
    public mutating func attention(q: String, k: String, v: String, heads: Int, headDim: Int, mask: String? = nil,
                                   scope: String) -> String {
        let split = int64s([0, 0, heads, headDim])
        let qh = op("Transpose", [op("Reshape", [q, split], scope: scope)], scope: scope, [("perm", .ints([0, 2, 1, 3]))])
        let kh = op("Transpose", [op("Reshape", [k, split], scope: scope)], scope: scope, [("perm", .ints([0, 2, 3, 1]))])
        let vh = op("Transpose", [op("Reshape", [v, split], scope: scope)], scope: scope, [("perm", .ints([0, 2, 1, 3]))])
        var scores = op("Mul", [op("MatMul", [qh, kh], scope: scope), scalar(1 / Float(headDim).squareRoot())], scope: scope)
        if let mask { scores = op("Add", [scores, mask], scope: scope) }
        let probabilities = op("Softmax", [scores], scope: scope, [("axis", .int(-1))])
        let o = op("Transpose", [op("MatMul", [probabilities, vh], scope: scope)], scope: scope, [("perm", .ints([0, 2, 1, 3]))])
        return op("Reshape", [o, int64s([0, 0, heads * headDim])], scope: scope)
    }

    /// [B, C, H, W] -> [B, H*W, C].
    public mutating func toTokens(_ x: String, scope: String) -> String {
        op("Transpose", [op("Reshape", [x, int64s([0, 0, -1])], scope: scope)], scope: scope, [("perm", .ints([0, 2, 1]))])
    }

    /// [B, H*W, C] -> [B, C, H, W], with B, H and W taken from `like` ([B, *, H, W]).
    public mutating func fromTokens(_ tokens: String, like: String, channels: Int, scope: String) -> String {
        let planes = op("Transpose", [tokens], scope: scope, [("perm", .ints([0, 2, 1]))])
        let batch = op("Shape", [like], scope: scope, [("start", .int(0)), ("end", .int(1))])
        let spatial = op("Shape", [like], scope: scope, [("start", .int(2)), ("end", .int(4))])
        let shape = op("Concat", [batch, int64s([channels]), spatial], scope: scope, [("axis", .int(0))])
        return op("Reshape", [planes, shape], scope: scope)
    }

    /// Nearest-neighbour 2x upsampling (torch's F.interpolate(scale_factor=2, mode="nearest")).
    public mutating func upsampleNearest2x(_ x: String, scope: String) -> String {
        let scales = floats([1, 1, 2, 2], shape: [4], name: "upsample_scales")
        return op("Resize", [x, "", scales], scope: scope, [("coordinate_transformation_mode", .string("asymmetric")),
                                                            ("mode", .string("nearest")), ("nearest_mode", .string("floor"))])
    }
}
