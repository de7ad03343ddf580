import TensorFormats
import UNet

extension PruningUnits {
    /// The coupling graph of a PixArt transformer (formats/pixart.md, "Width pruning"): per block, the
    /// heads of attn1 and of attn2 (to_q/to_k/to_v rows and biases, to_out.0 columns; head size
    /// `attention_head_dim`) and the FFN width (ff.net.0.proj rows and bias, ff.net.2 columns; units of 32
    /// channels, or the whole width as one unit when it is not a multiple of 32, as for UNets). The residual width D stays, so
    /// every block's output lines up with the teacher's.
    public init(pixart config: PixArtConfig, shapes: [String: [Int]], file: String) throws {
        func shape(_ name: String, rank: Int) throws -> [Int] {
            guard let s = shapes[name] else {
                throw SurgeryError(.missingParameter, "a prunable layer needs it", file: file, tensor: name)
            }
            guard s.count == rank else { throw SurgeryError(.badShape, "rank \(s.count), expected \(rank)", file: file, tensor: name) }
            return s
        }
        /// Rows of each named tensor (and its bias when present) and columns of `columns`, in units of `unit`.
        func layer(_ name: String, kind: PrunableKind, rows: [String], columns: String, unit: Int) throws -> PrunableLayer {
            let width = try shape(rows[0] + ".weight", rank: 2)[0]
            guard unit > 0, width % unit == 0, width > 0 else {
                throw SurgeryError(.badShape, "\(width) rows are not whole units of \(unit)", file: file, tensor: rows[0] + ".weight")
            }
            var tensors: [CoupledTensor] = []
            for prefix in rows {
                for suffix in [".weight", ".bias"] where shapes[prefix + suffix] != nil || suffix == ".weight" {
                    let s = try shape(prefix + suffix, rank: suffix == ".weight" ? 2 : 1)
                    guard s[0] == width else {
                        throw SurgeryError(.badShape, "\(s[0]) rows where \(rows[0]).weight has \(width)", file: file, tensor: prefix + suffix)
                    }
                    tensors.append(CoupledTensor(name: prefix + suffix, axis: 0, shape: s, period: width, unitSize: unit))
                }
            }
            let s = try shape(columns, rank: 2)
            guard s[1] == width else {
                throw SurgeryError(.badShape, "\(s[1]) columns where \(rows[0]).weight has \(width) rows", file: file, tensor: columns)
            }
            tensors.append(CoupledTensor(name: columns, axis: 1, shape: s, period: width, unitSize: unit))
            return PrunableLayer(name: name, kind: kind, units: width / unit, unitSize: unit, tensors: tensors)
        }
        var layers: [PrunableLayer] = []
        for i in 0..<config.numLayers {
            let p = "transformer_blocks.\(i)"
            for attn in ["attn1", "attn2"] {
                let a = "\(p).\(attn)"
                layers.append(try layer(a, kind: .attention, rows: [a + ".to_q", a + ".to_k", a + ".to_v"], columns: a + ".to_out.0.weight",
                                        unit: config.attentionHeadDim))
            }
            let ffn = try shape("\(p).ff.net.0.proj.weight", rank: 2)[0]
            layers.append(try layer("\(p).ff", kind: .feedforward, rows: ["\(p).ff.net.0.proj"], columns: "\(p).ff.net.2.weight",
                                    unit: ffn % 32 == 0 ? 32 : ffn))
        }
        self.layers = layers
    }
}
