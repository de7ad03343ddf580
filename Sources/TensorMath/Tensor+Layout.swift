/// Concatenation, splitting and permutations that move elements without arithmetic.
extension Tensor {
    /// Concatenates tensors along dim 1 (channels for NCHW; any rank >= 2 works). All dims other than 1
    /// must match. The backward of a concatenation is `splitChannels` of the gradient with the same sizes.
    public static func concatChannels(_ parts: [Tensor]) -> Tensor {
        precondition(!parts.isEmpty && parts.allSatisfy { $0.rank >= 2 }, "concat needs rank >= 2 tensors")
        let outer = parts[0].shape[0]
        let inner = parts[0].shape.dropFirst(2).reduce(1, *)
        for p in parts {
            precondition(p.shape[0] == outer && Array(p.shape.dropFirst(2)) == Array(parts[0].shape.dropFirst(2)),
                         "concat shape mismatch \(p.shape) vs \(parts[0].shape)")
        }
        let totalC = parts.reduce(0) { $0 + $1.shape[1] }
        var shape = parts[0].shape
        shape[1] = totalC
        return Tensor(uninitializedShape: shape) { out in
            var cOffset = 0
            for p in parts {
                let block = p.shape[1] * inner
                p.data.withUnsafeBufferPointer { src in
                    for b in 0..<outer {
                        let dst = out.baseAddress! + (b * totalC + cOffset) * inner
                        dst.update(from: src.baseAddress! + b * block, count: block)
                    }
                }
                cOffset += p.shape[1]
            }
        }
    }

    /// Splits along dim 1 into parts of the given sizes (which must sum to `shape[1]`). The backward of a
    /// split is `concatChannels` of the part gradients.
    public func splitChannels(_ sizes: [Int]) -> [Tensor] {
        precondition(rank >= 2 && sizes.reduce(0, +) == shape[1], "split sizes \(sizes) do not cover \(shape)")
        let outer = shape[0]
        let totalC = shape[1]
        let inner = shape.dropFirst(2).reduce(1, *)
        var result: [Tensor] = []
        var cOffset = 0
        data.withUnsafeBufferPointer { src in
            for c in sizes {
                var s = shape
                s[1] = c
                let block = c * inner
                let off = cOffset
                result.append(Tensor(uninitializedShape: s) { out in
                    for b in 0..<outer {
                        out.baseAddress!.advanced(by: b * block)
                            .update(from: src.baseAddress! + (b * totalC + off) * inner, count: block)
                    }
                })
                cOffset += c
            }
        }
        return result
    }

    /// [B, C, H, W] -> [B, H*W, C]: image to token sequence (what diffusers' attention blocks do with
    /// `view(B, C, H*W).transpose(1, 2)`). Its backward is `fromTokens(height:width:)` of the gradient.
    public func toTokens() -> Tensor {
        precondition(rank == 4, "toTokens expects [B,C,H,W], got \(shape)")
        let (b, c, hw) = (shape[0], shape[1], shape[2] * shape[3])
        return Tensor(uninitializedShape: [b, hw, c]) { out in
            data.withUnsafeBufferPointer { src in
                for n in 0..<b {
                    Tensor.transpose(src.baseAddress! + n * c * hw, rows: c, cols: hw,
                                     into: out.baseAddress! + n * c * hw)
                }
            }
        }
    }

    /// [B, H*W, C] -> [B, C, H, W]: the inverse of `toTokens`.
    public func fromTokens(height: Int, width: Int) -> Tensor {
        precondition(rank == 3 && shape[1] == height * width, "fromTokens expects [B,\(height * width),C], got \(shape)")
        let (b, hw, c) = (shape[0], shape[1], shape[2])
        return Tensor(uninitializedShape: [b, c, height, width]) { out in
            data.withUnsafeBufferPointer { src in
                for n in 0..<b {
                    Tensor.transpose(src.baseAddress! + n * c * hw, rows: hw, cols: c,
                                     into: out.baseAddress! + n * c * hw)
                }
            }
        }
    }

    /// Swaps the last two axes of a tensor of rank >= 2 ([..., M, N] -> [..., N, M]).
    public func transposedLastTwo() -> Tensor {
        precondition(rank >= 2, "transposedLastTwo needs rank >= 2")
        let m = shape[rank - 2], n = shape[rank - 1]
        let batch = count / Swift.max(1, m * n)
        var s = shape
        s.swapAt(rank - 2, rank - 1)
        return Tensor(uninitializedShape: s) { out in
            data.withUnsafeBufferPointer { src in
                for i in 0..<batch {
                    Tensor.transpose(src.baseAddress! + i * m * n, rows: m, cols: n, into: out.baseAddress! + i * m * n)
                }
            }
        }
    }

    /// Cache-blocked out-of-place transpose of a rows x cols row-major matrix.
    @usableFromInline
    static func transpose(_ src: UnsafePointer<Float>, rows: Int, cols: Int, into dst: UnsafeMutablePointer<Float>) {
        let tile = 32
        var i0 = 0
        while i0 < rows {
            let i1 = Swift.min(rows, i0 + tile)
            var j0 = 0
            while j0 < cols {
                let j1 = Swift.min(cols, j0 + tile)
                for i in i0..<i1 {
                    for j in j0..<j1 { dst[j * rows + i] = src[i * cols + j] }
                }
                j0 = j1
            }
            i0 = i1
        }
    }
}
