extension NN {
    /// y = x W^T + b, like `torch.nn.Linear`. x: [..., in]; weight: [out, in]; bias: [out] or nil.
    /// Returns [..., out].
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("linear", profileMark) }
        ComputeThreads.ensureConfigured()
        precondition(weight.rank == 2 && x.rank >= 1 && x.shape.last == weight.shape[1],
                     "linear: input \(x.shape) does not match weight \(weight.shape)")
        let (outF, inF) = (weight.shape[0], weight.shape[1])
        let rows = x.count / Swift.max(1, inF)
        if let bias { precondition(bias.shape == [outF], "linear: bias \(bias.shape) for \(outF) outputs") }
        var shape = x.shape
        shape[shape.count - 1] = outF
        return Tensor(uninitializedShape: shape) { out in
            guard rows > 0, outF > 0 else { return }
            let po = out.baseAddress!
            if let bias {
                bias.data.withUnsafeBufferPointer { pb in
                    for r in 0..<rows { (po + r * outF).update(from: pb.baseAddress!, count: outF) }
                }
            }
            x.data.withUnsafeBufferPointer { px in
                weight.data.withUnsafeBufferPointer { pw in
                    if inF == 0 {
                        if bias == nil { po.initialize(repeating: 0, count: rows * outF) }
                        return
                    }
                    sgemmParallel(transB: true, m: rows, n: outF, k: inF, a: px.baseAddress!, lda: inF,
                          b: pw.baseAddress!, ldb: inF, beta: bias == nil ? 0 : 1, c: po, ldc: outF)
                }
            }
        }
    }

    /// Backward of `linear`. dy: [..., out]; x: the forward input. Returns dx = dy W, dW = dy^T x and
    /// db = sum of dy over all leading dims (db only when `hasBias`).
    public static func linearBackward(_ dy: Tensor, input x: Tensor, weight: Tensor, hasBias: Bool,
                                      needs: GradientNeeds = .all) -> LayerGradients {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("linear bwd", profileMark) }
        ComputeThreads.ensureConfigured()
        let (outF, inF) = (weight.shape[0], weight.shape[1])
        let rows = x.count / Swift.max(1, inF)
        precondition(dy.count == rows * outF && dy.shape.last == outF,
                     "linearBackward: gradient \(dy.shape) does not match input \(x.shape) and weight \(weight.shape)")
        var grads = LayerGradients()
        if needs.contains(.input) {
            grads.input = Tensor(uninitializedShape: x.shape) { dx in
                guard rows > 0, inF > 0 else { return }
                if outF == 0 { dx.initialize(repeating: 0); return }
                dy.data.withUnsafeBufferPointer { pdy in
                    weight.data.withUnsafeBufferPointer { pw in
                        sgemmParallel(m: rows, n: inF, k: outF, a: pdy.baseAddress!, lda: outF,
                              b: pw.baseAddress!, ldb: inF, c: dx.baseAddress!, ldc: inF)
                    }
                }
            }
        }
        if needs.contains(.parameters) {
            grads.weight = Tensor(uninitializedShape: weight.shape) { dw in
                guard outF > 0, inF > 0 else { return }
                if rows == 0 { dw.initialize(repeating: 0); return }
                dy.data.withUnsafeBufferPointer { pdy in
                    x.data.withUnsafeBufferPointer { px in
                        sgemmParallel(transA: true, m: outF, n: inF, k: rows, a: pdy.baseAddress!, lda: outF,
                              b: px.baseAddress!, ldb: inF, c: dw.baseAddress!, ldc: inF)
                    }
                }
            }
            if hasBias {
                grads.bias = Tensor(uninitializedShape: [outF]) { db in
                    db.initialize(repeating: 0)
                    dy.data.withUnsafeBufferPointer { pdy in
                        for r in 0..<rows {
                            let row = pdy.baseAddress! + r * outF
                            for j in 0..<outF { db[j] += row[j] }
                        }
                    }
                }
            }
        }
        return grads
    }
}
