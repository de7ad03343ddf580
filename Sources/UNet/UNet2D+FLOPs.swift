/// Nominal floating-point work of a forward pass (2 per multiply-add of every conv, linear and
/// attention product; norms and activations left out), for reporting achieved GFLOP/s. A training step
/// is about three times the forward (backward computes input and weight gradients).
extension UNet2D {
    public func forwardFLOPs(batch: Int, height: Int, width: Int, contextLength: Int = 77) -> Double {
        var total = 0.0
        var h = height, w = width
        func conv(_ c: ConvLayer, outH: Int, outW: Int) {
            total += 2 * Double(batch * outH * outW) * Double(c.outChannels * c.inChannels * c.kernelArea)
        }
        func linear(_ l: LinearLayer, rows: Int) { total += 2 * Double(rows) * Double(l.inFeatures * l.outFeatures) }
        func attention(_ a: AttentionLayer, queries: Int, keys: Int) {
            linear(a.toQ, rows: batch * queries)
            linear(a.toK, rows: batch * keys)
            linear(a.toV, rows: batch * keys)
            linear(a.toOut, rows: batch * queries)
            total += 4 * Double(batch * queries * keys) * Double(a.toQ.outFeatures)
        }
        func resnet(_ r: ResnetBlock) {
            conv(r.conv1, outH: h, outW: w)
            conv(r.conv2, outH: h, outW: w)
            if let s = r.shortcut { conv(s, outH: h, outW: w) }
        }
        func blockAttention(_ a: BlockAttention?) {
            let n = h * w
            switch a {
            case .transformer(let t)?:
                linear(t.projIn, rows: batch * n)
                for b in t.blocks {
                    attention(b.attn1, queries: n, keys: n)
                    attention(b.attn2, queries: n, keys: contextLength)
                    linear(b.ffIn, rows: batch * n)
                    linear(b.ffOut, rows: batch * n)
                }
                linear(t.projOut, rows: batch * n)
            case .spatial(let s)?:
                attention(s.attention, queries: n, keys: n)
            case nil:
                break
            }
        }
        conv(convIn, outH: h, outW: w)
        for block in down {
            for layer in block.layers {
                resnet(layer.resnet)
                blockAttention(layer.attention)
            }
            if let ds = block.downsample {
                h /= 2
                w /= 2
                conv(ds.conv, outH: h, outW: w)
            }
        }
        if let mid {
            resnet(mid.first)
            for (a, r) in zip(mid.attentions, mid.resnets) {
                blockAttention(a)
                resnet(r)
            }
        }
        for block in up {
            for layer in block.layers {
                resnet(layer.resnet)
                blockAttention(layer.attention)
            }
            if let us = block.upsample {
                h *= 2
                w *= 2
                conv(us.conv, outH: h, outW: w)
            }
        }
        conv(convOut, outH: h, outW: w)
        return total
    }
}
