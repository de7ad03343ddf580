import Foundation

extension NN {
    /// SiLU (swish): x * sigmoid(x).
    public static func silu(_ x: Tensor) -> Tensor {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("silu", profileMark) }
        return Tensor(uninitializedShape: x.shape) { out in
            x.data.withUnsafeBufferPointer { px in
                Parallel.forRanges(x.count, grain: 32768) { range in
                    VectorMath.kernels.silu(px.baseAddress! + range.lowerBound, out.baseAddress! + range.lowerBound,
                                            range.count)
                }
            }
        }
    }

    /// Backward of `silu` given the forward input: dy * s * (1 + x * (1 - s)), s = sigmoid(x).
    public static func siluBackward(_ dy: Tensor, input x: Tensor) -> Tensor {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("silu bwd", profileMark) }
        precondition(dy.shape == x.shape, "siluBackward: gradient \(dy.shape) vs input \(x.shape)")
        return Tensor(uninitializedShape: x.shape) { out in
            dy.data.withUnsafeBufferPointer { pg in
            x.data.withUnsafeBufferPointer { px in
                Parallel.forRanges(x.count, grain: 32768) { range in
                    let lo = range.lowerBound
                    VectorMath.kernels.siluBackward(pg.baseAddress! + lo, px.baseAddress! + lo, out.baseAddress! + lo,
                                                    range.count)
                }
            }
            }
        }
    }

    /// GELU in its exact erf form (torch's default `approximate='none'`): 0.5 x (1 + erf(x / sqrt 2)),
    /// with erf as ATen's vectorized kernel computes it (absolute error < 2e-7).
    public static func gelu(_ x: Tensor) -> Tensor {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("gelu", profileMark) }
        return Tensor(uninitializedShape: x.shape) { out in
            x.data.withUnsafeBufferPointer { px in
                Parallel.forRanges(x.count, grain: 16384) { range in
                    VectorMath.kernels.gelu(px.baseAddress! + range.lowerBound, out.baseAddress! + range.lowerBound,
                                            range.count)
                }
            }
        }
    }

    /// Backward of `gelu` given the forward input.
    public static func geluBackward(_ dy: Tensor, input x: Tensor) -> Tensor {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("gelu bwd", profileMark) }
        precondition(dy.shape == x.shape, "geluBackward: gradient \(dy.shape) vs input \(x.shape)")
        return Tensor(uninitializedShape: x.shape) { out in
            dy.data.withUnsafeBufferPointer { pg in
            x.data.withUnsafeBufferPointer { px in
                Parallel.forRanges(x.count, grain: 16384) { range in
                    let lo = range.lowerBound
                    VectorMath.kernels.geluBackward(pg.baseAddress! + lo, px.baseAddress! + lo, out.baseAddress! + lo,
                                                    range.count)
                }
            }
            }
        }
    }

    /// GEGLU's gating after its projection: h [..., 2n] is split as torch's `chunk(2, dim=-1)` into
    /// hidden = h[..., :n] and gate = h[..., n:]; returns hidden * gelu(gate), [..., n].
    public static func geglu(_ h: Tensor) -> Tensor {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("geglu", profileMark) }
        let two = h.shape.last ?? 0
        precondition(two % 2 == 0, "geglu: last dim \(two) is odd")
        let n = two / 2, rows = h.count / Swift.max(1, two)
        var shape = h.shape
        shape[shape.count - 1] = n
        return Tensor(uninitializedShape: shape) { out in
            h.data.withUnsafeBufferPointer { ph in
                Parallel.forRanges(rows, grain: Swift.max(1, 8192 / Swift.max(1, n))) { range in
                    for r in range {
                        let src = ph.baseAddress! + r * two
                        VectorMath.kernels.geglu(src, src + n, out.baseAddress! + r * n, n)
                    }
                }
            }
        }
    }

    /// Backward of `geglu` given the forward input h; returns dh [..., 2n].
    public static func gegluBackward(_ dy: Tensor, input h: Tensor) -> Tensor {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("geglu bwd", profileMark) }
        let two = h.shape.last ?? 0
        let n = two / 2, rows = h.count / Swift.max(1, two)
        precondition(dy.count == rows * n && dy.shape.last == n, "gegluBackward: gradient \(dy.shape) vs input \(h.shape)")
        return Tensor(uninitializedShape: h.shape) { out in
            h.data.withUnsafeBufferPointer { ph in
            dy.data.withUnsafeBufferPointer { pdy in
                Parallel.forRanges(rows, grain: Swift.max(1, 4096 / Swift.max(1, n))) { range in
                    for r in range {
                        let src = ph.baseAddress! + r * two, dst = out.baseAddress! + r * two
                        VectorMath.kernels.gegluBackward(pdy.baseAddress! + r * n, src, src + n, dst, dst + n, n)
                    }
                }
            }
            }
        }
    }

    /// Applies `f` to every element, split over the cores for large tensors.
    @inline(__always)
    static func map(_ x: Tensor, _ f: (Float) -> Float) -> Tensor {
        Tensor(uninitializedShape: x.shape) { out in
            x.data.withUnsafeBufferPointer { px in
                Parallel.forRanges(x.count, grain: 32768) { range in
                    for i in range { out[i] = f(px[i]) }
                }
            }
        }
    }

    /// Applies `f` to corresponding elements of two same-shaped tensors.
    @inline(__always)
    static func zipMap(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        precondition(a.shape == b.shape, "shape mismatch \(a.shape) vs \(b.shape)")
        return Tensor(uninitializedShape: a.shape) { out in
            a.data.withUnsafeBufferPointer { pa in
            b.data.withUnsafeBufferPointer { pb in
                Parallel.forRanges(a.count, grain: 32768) { range in
                    for i in range { out[i] = f(pa[i], pb[i]) }
                }
            }
            }
        }
    }
}
