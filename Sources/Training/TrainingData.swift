import Foundation
import TensorFormats
import TensorMath
import UNet

/// The rules a data or forget file can break (formats/training-data.md); each error names the file,
/// the rule and the tensor (`bad-shape` is the engine's code, declared in UNet).
extension ErrorCode {
    public static let missingTensor = Self(rawValue: "missing-tensor")
    public static let unexpectedTensor = Self(rawValue: "unexpected-tensor")
    public static let countMismatch = Self(rawValue: "count-mismatch")
    public static let emptyData = Self(rawValue: "empty-data")
    public static let nonFinite = Self(rawValue: "non-finite")
}

/// A training set as the model consumes it: clean samples with their prompts' encoder states, and the
/// empty prompt for classifier-free-guidance dropout and ESD.
public struct TrainingData: Sendable {
    /// What a file is for: retain data needs `x0`; a forget file may hold prompts only.
    public enum Role: Sendable { case data, forget }

    /// [N, C, H, W]; nil in a forget file of prompts only.
    public var x0: Tensor?
    /// [N, S, D]; nil for unconditional models.
    public var cond: Tensor?
    /// [S, D]: the empty prompt.
    public var uncond: Tensor?
    /// [N, S, D]: the anchor prompt of each forget prompt (concept ablation).
    public var anchor: Tensor?
    /// The prompts as text (`dmsurgery.prompts`), informational.
    public var prompts: [String]
    /// SDXL's added conditioning (models with `addition_embed_type: text_time`, nil otherwise): each
    /// prompt's pooled embedding `cond_pooled` [N, P] (the UNet's text_embeds, named as `encode-prompt`
    /// writes it) and micro-conditioning `time_ids` [N, K].
    public var condPooled: Tensor?
    public var timeIds: Tensor?
    /// [P]: the empty prompt's pooled embedding (with `uncond`).
    public var uncondPooled: Tensor?
    /// [N, P]: the anchor prompts' pooled embeddings (with `anchor`).
    public var anchorPooled: Tensor?

    /// Items: the count of `x0`, else of `cond`.
    public var count: Int { x0?.shape[0] ?? cond?.shape[0] ?? 0 }

    public init(x0: Tensor?, cond: Tensor?, uncond: Tensor?, anchor: Tensor? = nil, prompts: [String] = []) {
        self.x0 = x0
        self.cond = cond
        self.uncond = uncond
        self.anchor = anchor
        self.prompts = prompts
    }

    /// Items `indices`' added conditioning (nil for models without text_time).
    public func textTime(_ indices: [Int]) -> TextTimeInputs? {
        guard let condPooled, let timeIds else { return nil }
        return TextTimeInputs(textEmbeds: condPooled.items(indices), timeIds: timeIds.items(indices))
    }

    /// The empty prompt's added conditioning for items `indices` (their own time ids: diffusers' SDXL
    /// pipelines give both guidance sides the same micro-conditioning).
    public func uncondTextTime(_ indices: [Int]) -> TextTimeInputs? {
        guard let uncondPooled, let timeIds else { return nil }
        return TextTimeInputs(textEmbeds: uncondPooled.repeatedItem(indices.count), timeIds: timeIds.items(indices))
    }

    /// The anchor prompts' added conditioning for items `indices`.
    public func anchorTextTime(_ indices: [Int]) -> TextTimeInputs? {
        guard let anchorPooled, let timeIds else { return nil }
        return TextTimeInputs(textEmbeds: anchorPooled.items(indices), timeIds: timeIds.items(indices))
    }

    /// Reads and validates `checkpoint` (named `file` in errors) against the model `config` describes;
    /// only the config is needed, so callers that never build the model (pruning) validate the same way.
    public init(checkpoint: Checkpoint, file: String, role: Role, config: UNetConfig) throws {
        let source = checkpoint.isSequential ? try checkpoint.withRandomAccess() : checkpoint
        func read(_ name: String) throws -> Tensor? {
            guard let entry = source.entry(named: name) else { return nil }
            let values = try source.floats(of: entry)
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw TensorFormatError(.nonFinite, "value \(values[bad]) at element \(bad)", file: file, tensor: name)
            }
            return Tensor(shape: entry.shape, data: values)
        }
        func fail(_ code: TensorFormatError.Code, _ message: String, _ tensor: String?) -> TensorFormatError {
            TensorFormatError(code, message, file: file, tensor: tensor)
        }
        func shape(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }

        let x0 = try read("x0"), cond = try read("cond"), uncond = try read("uncond"), anchor = try read("anchor")
        if let x0 {
            guard x0.rank == 4 else { throw fail(.badShape, "shape \(shape(x0.shape)), expected [N, C, H, W]", "x0") }
            let factor = config.downsampleFactor
            guard x0.shape[1] == config.inChannels, x0.shape[2] >= 1, x0.shape[3] >= 1,
                  x0.shape[2] % factor == 0, x0.shape[3] % factor == 0 else {
                throw fail(.badShape, "shape \(shape(x0.shape)): the model takes \(config.inChannels) channels and sides that are positive multiples of \(factor)", "x0")
            }
        } else if role == .data {
            throw fail(.missingTensor, "a data file needs the clean samples x0 [N, C, H, W]", "x0")
        }
        if let d = config.crossAttentionDim {
            guard let cond else { throw fail(.missingTensor, "a conditional model needs the prompts' encoder states cond [N, S, \(d)]", "cond") }
            guard cond.rank == 3, cond.shape[1] >= 1, cond.shape[2] == d else {
                throw fail(.badShape, "shape \(shape(cond.shape)), expected [N, S, \(d)] with S >= 1 tokens (the model's cross_attention_dim is \(d))", "cond")
            }
            if let x0, x0.shape[0] != cond.shape[0] {
                throw fail(.countMismatch, "\(cond.shape[0]) prompts for \(x0.shape[0]) samples in x0", "cond")
            }
            if let uncond, uncond.shape != Array(cond.shape.dropFirst()) {
                throw fail(.badShape, "shape \(shape(uncond.shape)), expected [S, D] = \(shape(Array(cond.shape.dropFirst()))) like cond", "uncond")
            }
            if let anchor, anchor.shape != cond.shape {
                throw fail(.badShape, "shape \(shape(anchor.shape)), expected \(shape(cond.shape)) like cond", "anchor")
            }
            if role == .forget && uncond == nil {
                throw fail(.missingTensor, "a forget file needs the empty prompt uncond [S, \(d)]", "uncond")
            }
        } else {
            for (name, tensor) in [("cond", cond), ("uncond", uncond), ("anchor", anchor)] where tensor != nil {
                throw fail(.unexpectedTensor, "the model is unconditional (no cross_attention_dim)", name)
            }
            if role == .forget { throw fail(.unexpectedTensor, "forgetting a concept needs a conditional model", nil) }
        }
        let n = x0?.shape[0] ?? cond?.shape[0] ?? 0
        guard n > 0 else { throw fail(.emptyData, "the file holds no items (N = 0)", x0 == nil ? "cond" : "x0") }
        let textTime = try Self.readTextTime(read, fail, config: config, role: role, count: n, anchor: anchor != nil)

        var prompts: [String] = []
        if let text = checkpoint.metadata?["dmsurgery.prompts"], case .array(let list)? = try? JSONParser.parse(text) {
            prompts = list.compactMap(\.stringValue)
        }
        self.init(x0: x0, cond: cond, uncond: uncond, anchor: anchor, prompts: prompts)
        (condPooled, timeIds, uncondPooled, anchorPooled) = textTime
    }

    /// The text_time tensors: `cond_pooled` [N, P] and `time_ids` [N, K] with P + K x
    /// addition_time_embed_dim = projection_class_embeddings_input_dim, `uncond_pooled` [P] (a
    /// forget file's ESD ∅ needs it), `anchor_pooled` [N, P] beside `anchor`; all refused for a
    /// model without text_time.
    private static func readTextTime(_ read: (String) throws -> Tensor?, _ fail: (TensorFormatError.Code, String, String?) -> TensorFormatError,
                                     config: UNetConfig, role: Role, count n: Int, anchor: Bool)
        throws -> (Tensor?, Tensor?, Tensor?, Tensor?) {
        let names = ["cond_pooled", "time_ids", "uncond_pooled", "anchor_pooled"]
        let tensors = try names.map { try read($0) }
        guard let spec = config.textTime else {
            for (name, tensor) in zip(names, tensors) where tensor != nil {
                throw fail(.unexpectedTensor, "the model has no text_time conditioning (addition_embed_type)", name)
            }
            return (nil, nil, nil, nil)
        }
        guard let embeds = tensors[0] else {
            throw fail(.missingTensor, "a text_time (SDXL) model needs each prompt's pooled embedding cond_pooled [N, P]", "cond_pooled")
        }
        guard embeds.rank == 2, embeds.shape[1] >= 1, embeds.shape[1] < spec.inputDim,
              (spec.inputDim - embeds.shape[1]) % spec.timeEmbedDim == 0 else {
            throw fail(.badShape, "shape \(embeds.shape), expected [N, P] with \(spec.inputDim) - P a multiple of addition_time_embed_dim \(spec.timeEmbedDim)", "cond_pooled")
        }
        let p = embeds.shape[1], k = (spec.inputDim - p) / spec.timeEmbedDim
        guard let ids = tensors[1] else {
            throw fail(.missingTensor, "a text_time (SDXL) model needs the micro-conditioning time_ids [N, \(k)] (original size, crop top-left, target size)", "time_ids")
        }
        guard ids.rank == 2, ids.shape[1] == k else { throw fail(.badShape, "shape \(ids.shape), expected [N, \(k)]", "time_ids") }
        for (name, tensor) in [("cond_pooled", embeds), ("time_ids", ids)] where tensor.shape[0] != n {
            throw fail(.countMismatch, "\(tensor.shape[0]) rows for \(n) items", name)
        }
        if let uncond = tensors[2], uncond.shape != [p] {
            throw fail(.badShape, "shape \(uncond.shape), expected [\(p)] like one row of cond_pooled", "uncond_pooled")
        }
        if role == .forget && tensors[2] == nil {
            throw fail(.missingTensor, "a forget file for a text_time (SDXL) model needs the empty prompt's pooled embedding uncond_pooled [\(p)]", "uncond_pooled")
        }
        if let anchorEmbeds = tensors[3] {
            guard anchor else { throw fail(.unexpectedTensor, "anchor_pooled without the anchor prompts anchor", "anchor_pooled") }
            guard anchorEmbeds.shape == embeds.shape else {
                throw fail(.badShape, "shape \(anchorEmbeds.shape), expected \(embeds.shape) like cond_pooled", "anchor_pooled")
            }
        } else if anchor {
            throw fail(.missingTensor, "anchor prompts on a text_time (SDXL) model need their pooled embeddings anchor_pooled [N, \(p)]", "anchor_pooled")
        }
        return (embeds, ids, tensors[2], tensors[3])
    }
}

extension TextTimeInputs {
    /// Items `indices` of both inputs.
    func items(_ indices: [Int]) -> TextTimeInputs {
        TextTimeInputs(textEmbeds: textEmbeds.items(indices), timeIds: timeIds.items(indices))
    }
}
