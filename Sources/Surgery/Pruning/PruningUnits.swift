import TensorFormats
import UNet

/// What a prunable layer is; units are only ranked against units of the same kind (`--global`).
public enum PrunableKind: String, Sendable, CaseIterable {
    /// A ResNet block's inner width, in whole GroupNorm groups of its `norm2`.
    case resnet
    /// An attention's heads (self or cross, both UNet families).
    case attention
    /// A GEGLU feed-forward's inner width, in units of 32 channels.
    case feedforward
}

/// One tensor that loses entries with a layer's units, and how its entries map onto them.
///
/// Channel `c` along `axis` belongs to unit `(c % period) / unitSize`: `period` is the axis length
/// except for the GEGLU projection, whose two halves (hidden, gate) repeat the same units.
public struct CoupledTensor: Sendable, Equatable {
    public var name: String
    /// 0: rows (outputs) are removed; 1: columns (inputs) are removed.
    public var axis: Int
    public var shape: [Int]
    public var period: Int
    public var unitSize: Int

    /// Elements per channel run along the axis: a whole row for axis 0, the kernel for axis 1.
    var runLength: Int { shape[(axis + 1)...].reduce(1, *) }

    /// The unit each channel along the axis belongs to.
    func unit(ofChannel c: Int) -> Int { (c % period) / unitSize }

    /// Shape after keeping `kept` of `units` units.
    func prunedShape(keeping kept: Int) -> [Int] {
        var s = shape
        s[axis] = shape[axis] / period * kept * unitSize
        return s
    }

    /// Element ranges (flat, row-major) that survive when `kept` units (sorted) stay, adjacent ones merged.
    func keptElementRanges(_ kept: [Int]) -> [Range<Int>] {
        let outer = shape[..<axis].reduce(1, *)
        let axisLength = shape[axis]
        let run = runLength
        var ranges: [Range<Int>] = []
        func append(_ r: Range<Int>) {
            if let last = ranges.last, last.upperBound == r.lowerBound {
                ranges[ranges.count - 1] = last.lowerBound..<r.upperBound
            } else {
                ranges.append(r)
            }
        }
        for o in 0..<outer {
            for repeatStart in stride(from: 0, to: axisLength, by: period) {
                for u in kept {
                    let c = repeatStart + u * unitSize
                    let start = (o * axisLength + c) * run
                    append(start..<(start + unitSize * run))
                }
            }
        }
        return ranges
    }
}

/// A layer whose inner width can shrink without changing any block's output width.
public struct PrunableLayer: Sendable, Equatable {
    /// `down_blocks.0.resnets.1`, `mid_block.attentions.0.transformer_blocks.0.attn2`, `….ff`,
    /// `down_blocks.1.attentions.0` (UNet2DModel spatial attention).
    public var name: String
    public var kind: PrunableKind
    /// Units the checkpoint has now (a pruned checkpoint has fewer than its config's dense width).
    public var units: Int
    /// Channels per unit: GroupNorm channels per group, head size, or 32.
    public var unitSize: Int
    public var tensors: [CoupledTensor]
}

/// The coupling graph of a diffusers UNet: every prunable layer and the tensor entries that go with
/// each unit, read from the config (group counts, head sizes) and the tensor shapes (current widths),
/// so it never loads a weight.
public struct PruningUnits: Sendable {
    public var layers: [PrunableLayer]

    /// Throws `SurgeryError` naming the tensor when a coupled tensor is missing or its shape does
    /// not split into whole units.
    public init(config: UNetConfig, shapes: [String: [Int]], file: String) throws {
        func shape(_ name: String, rank: Int? = nil) throws -> [Int] {
            guard let s = shapes[name] else {
                throw SurgeryError(.missingParameter, "a prunable layer needs it", file: file, tensor: name)
            }
            if let rank, s.count != rank {
                throw SurgeryError(.badShape, "rank \(s.count), expected \(rank)", file: file, tensor: name)
            }
            return s
        }
        func badShape(_ name: String, _ message: String) -> SurgeryError {
            SurgeryError(.badShape, message, file: file, tensor: name)
        }
        /// The config block a module prefix sits in: heads and head sizes are per block.
        func block(of prefix: String) -> Int {
            let n = config.blockOutChannels.count
            let parts = prefix.split(separator: ".")
            if parts.first == "mid_block" { return n - 1 }
            let index = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            return parts.first == "up_blocks" ? n - 1 - min(index, n - 1) : min(index, n - 1)
        }

        var found: [PrunableLayer] = []
        for name in shapes.keys {
            if name.hasSuffix(".conv1.weight"), name.contains(".resnets.") {
                let p = String(name.dropLast(".conv1.weight".count))
                let conv1 = try shape(name, rank: 4)
                let conv2 = try shape(p + ".conv2.weight", rank: 4)
                guard conv2[0] > 0, conv2[0] % config.normNumGroups == 0 else {
                    throw badShape(p + ".conv2.weight", "\(conv2[0]) outputs do not split into \(config.normNumGroups) groups")
                }
                let size = conv2[0] / config.normNumGroups
                let mid = conv1[0]
                guard mid > 0, mid % size == 0, conv2[1] == mid else {
                    throw badShape(name, "\(mid) channels are not whole groups of \(size) matching conv2's \(conv2[1]) inputs")
                }
                var tensors: [CoupledTensor] = []
                for (suffix, axis) in [(".conv1.weight", 0), (".conv1.bias", 0), (".time_emb_proj.weight", 0),
                                       (".time_emb_proj.bias", 0), (".norm2.weight", 0), (".norm2.bias", 0),
                                       (".conv2.weight", 1)] {
                    let s = try shape(p + suffix)
                    guard s.count > axis, s[axis] == mid else { throw badShape(p + suffix, "\(s) does not have \(mid) channels on axis \(axis)") }
                    tensors.append(CoupledTensor(name: p + suffix, axis: axis, shape: s, period: mid, unitSize: size))
                }
                found.append(PrunableLayer(name: p, kind: .resnet, units: mid / size, unitSize: size, tensors: tensors))
            } else if name.hasSuffix(".to_q.weight") {
                let p = String(name.dropLast(".to_q.weight".count))
                let q = try shape(name, rank: 2)
                let out = try shape(p + ".to_out.0.weight", rank: 2)
                let channels = out[0]
                let headDim: Int
                if config.family == .conditional {
                    headDim = channels / config.attentionHeads[block(of: p)]
                } else {
                    headDim = config.attentionHeadDim ?? channels
                }
                let inner = q[0]
                guard headDim > 0, inner > 0, inner % headDim == 0, out[1] == inner else {
                    throw badShape(name, "\(inner) rows are not whole heads of size \(headDim) matching to_out's \(out[1]) inputs")
                }
                var tensors: [CoupledTensor] = []
                for proj in ["to_q", "to_k", "to_v"] {
                    for (suffix, required) in [(".weight", true), (".bias", false)] {
                        let key = p + "." + proj + suffix
                        guard required || shapes[key] != nil else { continue }
                        let s = try shape(key)
                        guard s[0] == inner else { throw badShape(key, "\(s) does not have \(inner) rows") }
                        tensors.append(CoupledTensor(name: key, axis: 0, shape: s, period: inner, unitSize: headDim))
                    }
                }
                tensors.append(CoupledTensor(name: p + ".to_out.0.weight", axis: 1, shape: out, period: inner, unitSize: headDim))
                found.append(PrunableLayer(name: p, kind: .attention, units: inner / headDim, unitSize: headDim, tensors: tensors))
            } else if name.hasSuffix(".ff.net.0.proj.weight") {
                let p = String(name.dropLast(".net.0.proj.weight".count))
                let proj = try shape(name, rank: 2)
                guard proj[0] > 0, proj[0] % 2 == 0 else { throw badShape(name, "GEGLU projection has an odd or zero width \(proj[0])") }
                let inner = proj[0] / 2
                let size = inner % 32 == 0 ? 32 : inner
                var tensors = [CoupledTensor(name: name, axis: 0, shape: proj, period: inner, unitSize: size)]
                if let bias = shapes[p + ".net.0.proj.bias"] {
                    guard bias == [proj[0]] else { throw badShape(p + ".net.0.proj.bias", "\(bias) does not match \(proj[0]) rows") }
                    tensors.append(CoupledTensor(name: p + ".net.0.proj.bias", axis: 0, shape: bias, period: inner, unitSize: size))
                }
                let out = try shape(p + ".net.2.weight", rank: 2)
                guard out[1] == inner else { throw badShape(p + ".net.2.weight", "\(out[1]) inputs, the GEGLU inner width is \(inner)") }
                tensors.append(CoupledTensor(name: p + ".net.2.weight", axis: 1, shape: out, period: inner, unitSize: size))
                found.append(PrunableLayer(name: p, kind: .feedforward, units: inner / size, unitSize: size, tensors: tensors))
            }
        }
        // Natural name order (blocks.2 before blocks.10); only the few layer names are sorted, not every tensor.
        layers = found.sorted { naturalLess($0.name, $1.name) }
    }

    public func layer(named name: String) -> PrunableLayer? { layers.first { $0.name == name } }

    /// Coupled tensor name -> (layer index, tensor).
    func tensorIndex() -> [String: (layer: Int, tensor: CoupledTensor)] {
        var index: [String: (Int, CoupledTensor)] = [:]
        for (i, layer) in layers.enumerated() {
            for t in layer.tensors { index[t.name] = (i, t) }
        }
        return index
    }
}
