extension NN {
    /// Nearest-neighbour 2x upsampling of [B, C, H, W] to [B, C, 2H, 2W]
    /// (`F.interpolate(scale_factor=2.0, mode="nearest")`).
    public static func upsampleNearest2x(_ x: Tensor) -> Tensor {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("upsample", profileMark) }
        precondition(x.rank == 4, "upsampleNearest2x expects [B,C,H,W], got \(x.shape)")
        let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        return Tensor(uninitializedShape: [b, c, 2 * h, 2 * w]) { out in
            x.data.withUnsafeBufferPointer { px in
                Parallel.forRanges(b * c, grain: Swift.max(1, 16384 / Swift.max(1, 4 * h * w))) { planes in
                    for p in planes {
                        let src = px.baseAddress! + p * h * w
                        let dst = out.baseAddress! + p * 4 * h * w
                        for y in 0..<h {
                            let row0 = dst + (2 * y) * 2 * w
                            for xx in 0..<w {
                                let v = src[y * w + xx]
                                row0[2 * xx] = v
                                row0[2 * xx + 1] = v
                            }
                            (row0 + 2 * w).update(from: row0, count: 2 * w)
                        }
                    }
                }
            }
        }
    }

    /// Backward of `upsampleNearest2x`: each input gradient is the sum of its 2x2 output block.
    public static func upsampleNearest2xBackward(_ dy: Tensor) -> Tensor {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("upsample bwd", profileMark) }
        precondition(dy.rank == 4 && dy.shape[2] % 2 == 0 && dy.shape[3] % 2 == 0,
                     "upsampleNearest2xBackward expects [B,C,2H,2W], got \(dy.shape)")
        let (b, c, h, w) = (dy.shape[0], dy.shape[1], dy.shape[2] / 2, dy.shape[3] / 2)
        return Tensor(uninitializedShape: [b, c, h, w]) { out in
            dy.data.withUnsafeBufferPointer { pdy in
                Parallel.forRanges(b * c, grain: Swift.max(1, 16384 / Swift.max(1, 4 * h * w))) { planes in
                    for p in planes {
                        let src = pdy.baseAddress! + p * 4 * h * w
                        let dst = out.baseAddress! + p * h * w
                        for y in 0..<h {
                            let r0 = src + (2 * y) * 2 * w, r1 = r0 + 2 * w
                            for xx in 0..<w {
                                dst[y * w + xx] = (r0[2 * xx] + r0[2 * xx + 1]) + (r1[2 * xx] + r1[2 * xx + 1])
                            }
                        }
                    }
                }
            }
        }
    }

    /// x [B, C, ...] + bias broadcast over the trailing dims; bias is [B, C] (a per-sample vector such as
    /// a ResNet's projected time embedding) or [C].
    public static func addChannelBias(_ x: Tensor, _ bias: Tensor) -> Tensor {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("channel bias", profileMark) }
        precondition(x.rank >= 2, "addChannelBias expects [B,C,...], got \(x.shape)")
        let (b, c) = (x.shape[0], x.shape[1])
        let perSample = bias.shape == [b, c]
        precondition(perSample || bias.shape == [c], "addChannelBias: bias \(bias.shape) for input \(x.shape)")
        let inner = x.count / Swift.max(1, b * c)
        return Tensor(uninitializedShape: x.shape) { out in
            x.data.withUnsafeBufferPointer { px in
            bias.data.withUnsafeBufferPointer { pb in
                Parallel.forRanges(b * c, grain: Swift.max(1, 16384 / Swift.max(1, inner))) { planes in
                    for p in planes {
                        let v = perSample ? pb[p] : pb[p % c]
                        let s = px.baseAddress! + p * inner, d = out.baseAddress! + p * inner
                        for i in 0..<inner { d[i] = s[i] + v }
                    }
                }
            }
            }
        }
    }

    /// Backward of `addChannelBias` for the bias: dy summed over the trailing dims, [B, C] when
    /// `perSample`, else also over the batch, [C]. (The input's gradient is dy itself.)
    public static func addChannelBiasBackward(_ dy: Tensor, perSample: Bool) -> Tensor {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("channel bias bwd", profileMark) }
        if !perSample { return channelSums(dy) }
        let (b, c) = (dy.shape[0], dy.shape[1])
        let inner = dy.count / Swift.max(1, b * c)
        return Tensor(uninitializedShape: [b, c]) { out in
            dy.data.withUnsafeBufferPointer { p in
                for plane in 0..<(b * c) {
                    out[plane] = VectorMath.sum(p.baseAddress! + plane * inner, count: inner)
                }
            }
        }
    }
}
