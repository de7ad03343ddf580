import Foundation
import TensorFormats
import TensorMath
import UNet

/// Everything a run needs to continue bit for bit: weights of every trained model, AdamW moments and
/// step counts, the EMA, the random stream and the step. Stored as one safetensors file (tensors under
/// `model/…`, `copy/…`, `ema/…`, `adam/<optimizer>/{m,v}/…`; scalars as JSON in the `dmsurgery.state`
/// metadata key), written atomically.
public struct TrainingState: Sendable {
    public var tensors: [String: Tensor] = [:]
    public var values: [String: String] = [:]

    public static let metadataKey = "dmsurgery.state"

    public init() {}

    public mutating func store(_ model: UNet2D, as prefix: String) {
        for (name, p) in model.parameters { tensors["\(prefix)/\(name)"] = p }
    }

    public func restore(_ model: inout UNet2D, from prefix: String, file: String) throws {
        try refuseStray(under: "\(prefix)/", known: Set(model.parameters.keys), file: file)
        for name in model.parameters.keys {
            guard let t = tensors["\(prefix)/\(name)"] else {
                throw TensorFormatError(.missingTensor, "the state does not hold this parameter", file: file, tensor: "\(prefix)/\(name)")
            }
            do { try model.setParameter(name, t) } catch {
                throw TensorFormatError(.badShape, "\(error)", file: file, tensor: "\(prefix)/\(name)", cause: error)
            }
            guard t.data.allSatisfy(\.isFinite) else {
                throw TensorFormatError(.nonFinite, "a weight is not finite", file: file, tensor: "\(prefix)/\(name)")
            }
        }
    }

    public mutating func store(_ optimizer: ModelOptimizer, as prefix: String) throws {
        var steps: [String: Int] = [:]
        for (name, s) in optimizer.adam.states {
            tensors["\(prefix)/m/\(name)"] = Tensor(shape: [s.m.count], data: s.m)
            tensors["\(prefix)/v/\(name)"] = Tensor(shape: [s.v.count], data: s.v)
            steps[name] = s.step
        }
        values["\(prefix)/updates"] = String(optimizer.updates)
        values["\(prefix)/steps"] = JSONWriter.compact(.object(steps.keys.sorted().map { JSONMember($0, .int(steps[$0]!)) }))
    }

    /// The largest step or update count a state may hold: far beyond any run, and small enough that
    /// the `step + 1` and powers computed from it cannot overflow or lose all precision.
    public static let maximumCount = 1 << 40

    /// Restores the optimizer of `model`'s parameters. A state file is input like any other: every
    /// count is range-checked and every moment must be a finite tensor of its parameter's size, or the
    /// resume is refused (a tampered or foreign file would otherwise trap in AdamW or train NaNs).
    public func restore(_ optimizer: inout ModelOptimizer, from prefix: String, for model: UNet2D, file: String) throws {
        guard let updates = values["\(prefix)/updates"].flatMap(Int.init),
              let text = values["\(prefix)/steps"], case .object(let members)? = try? JSONParser.parse(text),
              members.allSatisfy({ $0.value.intValue != nil }) else {
            throw TensorFormatError(.invalidMetadata, "no state for optimizer '\(prefix)'", file: file)
        }
        guard (0...Self.maximumCount).contains(updates) else {
            throw TensorFormatError(.invalidMetadata, "optimizer '\(prefix)' has \(updates) updates (0...\(Self.maximumCount))", file: file)
        }
        let steps = members.map { ($0.key, $0.value.intValue!) }
        // Moments without a step entry (an extra `m/bogus`, a deleted steps entry) would be dropped and
        // their parameter's optimizer silently reset: every moment must belong to a listed step.
        let listed = Set(steps.map(\.0))
        try refuseStray(under: "\(prefix)/m/", known: listed, file: file)
        try refuseStray(under: "\(prefix)/v/", known: listed, file: file)
        optimizer.updates = updates
        optimizer.adam.states = [:]
        for (name, step) in steps {
            guard let parameter = model.parameters[name] else {
                throw TensorFormatError(.unexpectedTensor, "optimizer state for a parameter the model does not have", file: file, tensor: "\(prefix)/m/\(name)")
            }
            guard (0...updates).contains(step) else {
                throw TensorFormatError(.invalidMetadata, "step \(step) of a parameter is outside 0...\(updates) (the optimizer's updates)", file: file, tensor: "\(prefix)/m/\(name)")
            }
            var moments: [[Float]] = []
            for kind in ["m", "v"] {
                let key = "\(prefix)/\(kind)/\(name)"
                guard let t = tensors[key] else {
                    throw TensorFormatError(.missingTensor, "optimizer moments missing", file: file, tensor: key)
                }
                guard t.count == parameter.count else {
                    throw TensorFormatError(.badShape, "\(t.count) values for a parameter of \(parameter.count)", file: file, tensor: key)
                }
                guard t.data.allSatisfy({ $0.isFinite && (kind == "m" || $0 >= 0) }) else {
                    throw TensorFormatError(.nonFinite, kind == "m" ? "a moment is not finite" : "a second moment is negative or not finite", file: file, tensor: key)
                }
                moments.append(t.data)
            }
            optimizer.adam.states[name] = AdamW.State(step: step, m: moments[0], v: moments[1])
        }
    }

    /// Refuses a tensor under `prefix` whose name (after it) is not in `known`: a state holds exactly
    /// what `store` wrote, so anything else was added by hand.
    private func refuseStray(under prefix: String, known: Set<String>, file: String) throws {
        for key in tensors.keys.sorted() where key.utf8.starts(with: prefix.utf8) {
            let name = String(decoding: key.utf8.dropFirst(prefix.utf8.count), as: UTF8.self)
            guard known.contains(name) else {
                throw TensorFormatError(.unexpectedTensor, "the state holds a tensor the run does not have", file: file, tensor: key)
            }
        }
    }

    /// Writes the state atomically (temporary file, fsync, rename).
    public func write(to path: String) throws {
        let json = JSONWriter.compact(.object(values.keys.sorted().map { JSONMember($0, .string(values[$0]!)) }))
        let metadata = Metadata([(Self.metadataKey, json)])
        try SafetensorsWriter.writeFloats(tensors.keys.sorted().map { ($0, tensors[$0]!.shape, tensors[$0]!.data) },
                                          metadata: metadata, to: path, force: true)
    }

    /// Reads a state written by `write(to:)`.
    public init(contentsOf path: String) throws {
        let file = try Checkpoint.open(path, options: OpenOptions(randomAccess: true))
        guard let text = file.metadata?[Self.metadataKey], case .object(let members)? = try? JSONParser.parse(text),
              members.allSatisfy({ $0.value.stringValue != nil }) else {
            throw TensorFormatError(.invalidMetadata, "not a dmsurgery training state (no \(Self.metadataKey) metadata)", file: path)
        }
        values = Dictionary(members.map { ($0.key, $0.value.stringValue!) }, uniquingKeysWith: { a, _ in a })
        for entry in file.entries {
            // `write(to:)` stores float32 only: a retyped tensor would be converted, not refused.
            guard entry.dtype == .f32 else {
                throw TensorFormatError(.unknownDType, "a state tensor of dtype \(entry.dtype.rawValue); states hold F32", file: path, tensor: entry.name)
            }
            tensors[entry.name] = Tensor(shape: entry.shape, data: try file.floats(of: entry))
        }
    }
}
