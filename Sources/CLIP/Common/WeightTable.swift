import TensorFormats
import TensorMath

/// The weights of a model being built: every lookup checks presence and shape and records the name, so
/// that leftovers (another architecture's checkpoint, a typo) are refused afterwards.
public struct WeightTable {
    private(set) var weights: [String: Tensor]
    private(set) var used: Set<String> = []
    let file: String

    public init(_ weights: [String: Tensor], file: String) {
        self.weights = weights
        self.file = file
    }

    /// Every tensor of an opened checkpoint, widened to float32.
    public init(checkpoint: Checkpoint) throws {
        let source = checkpoint.isSequential ? try checkpoint.withRandomAccess() : checkpoint
        var weights: [String: Tensor] = [:]
        weights.reserveCapacity(source.entries.count)
        for entry in source.entries {
            weights[entry.name] = Tensor(shape: entry.shape, data: try source.floats(of: entry))
        }
        self.init(weights, file: checkpoint.name)
    }

    /// The tensor `name`, whose shape must be `shape`.
    public mutating func tensor(_ name: String, _ shape: [Int]) throws(CLIPError) -> Tensor {
        guard let t = weights[name] else {
            throw CLIPError(.modelMissingParameter, "not in the weights", file: file, tensor: name)
        }
        guard t.shape == shape else {
            throw CLIPError(.modelBadShape, "shape \(t.shape) where \(shape) is expected", file: file, tensor: name)
        }
        used.insert(name)
        return t
    }

    public func has(_ name: String) -> Bool { weights[name] != nil }

    /// Marks `name` as known but unused (buffers such as `position_ids` that some exports carry).
    public mutating func ignore(_ name: String) { if weights[name] != nil { used.insert(name) } }

    /// Refuses weights no layer claimed.
    public func checkAllUsed() throws(CLIPError) {
        if let name = weights.keys.filter({ !used.contains($0) }).sorted().first {
            throw CLIPError(.modelUnexpectedParameter, "not used by this architecture (\(weights.count - used.count) such tensors)", file: file, tensor: name)
        }
    }
}
