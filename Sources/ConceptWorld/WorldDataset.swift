import TensorFormats

/// The data files of the world (formats/concept-world.md) as in-memory tensors: which items go into
/// which file is decided here and nowhere else.
public struct WorldDataset: Sendable {
    public struct Tensors: Sendable {
        /// (name, shape, values) in file order.
        public var tensors: [(name: String, shape: [Int], values: [Float])]
        /// The prompt text of each item, in `cond`'s order (`dmsurgery.prompts`).
        public var prompts: [String]

        public var metadata: Metadata {
            Metadata([(WorldMetadataKey.prompts, JSONWriter.compact(.array(prompts.map { .string($0) })))])
        }
    }

    public let seed: UInt64
    public let perPrompt: Int
    public let heldoutPerPrompt: Int
    /// Which concepts the files forget; `.style` writes the original world's bytes.
    public let concept: WorldConcept

    public init(seed: UInt64, perPrompt: Int, heldoutPerPrompt: Int, concept: WorldConcept = .style) {
        self.seed = seed
        self.perPrompt = perPrompt
        self.heldoutPerPrompt = heldoutPerPrompt
        self.concept = concept
    }

    /// Refuses item counts whose largest file (every prompt's images and conditioning, built in memory
    /// before it is written) cannot fit in memory: `too-large` naming the option, instead of an
    /// allocation failure.
    public func checkMemory() throws {
        let s = WorldSize.self
        let perItem = s.channels * s.side * s.side + s.tokens * s.embeddingDim
        for (count, option) in [(perPrompt, "--per-prompt"), (heldoutPerPrompt, "--heldout-per-prompt")] {
            // Twice: the rendered pieces and the joined tensor exist together while a file is built.
            let bytes = MemoryBudget.product([concept.prompts.count, count, perItem, MemoryLayout<Float>.size, 2])
            try MemoryBudget.check(bytes, for: "\(count) images per prompt", option: option)
        }
    }

    /// Images of `prompts`, `count` each (prompt-major), with their conditioning.
    public func images(_ prompts: [WorldPrompt], count: Int, split: WorldSplit) -> Tensors {
        let items = prompts.flatMap { p in (0..<count).map { (p, $0) } }
        let x0 = items.flatMap { Renderer.render($0.0, seed: seed, split: split, index: $0.1) }
        let cond = items.flatMap { $0.0.embedding }
        let s = WorldSize.self
        return Tensors(tensors: [
            ("x0", [items.count, s.channels, s.side, s.side], x0),
            ("cond", [items.count, s.tokens, s.embeddingDim], cond),
            ("uncond", [s.tokens, s.embeddingDim], Vocabulary.embed(Vocabulary.unconditionalTokens)),
        ], prompts: items.map(\.0.text))
    }

    /// Every prompt, forget concepts included: the teacher's training data.
    public var all: Tensors { images(concept.prompts, count: perPrompt, split: .train) }
    /// The same renders without the forget concepts: the students' fine-tuning data.
    public var retain: Tensors { images(concept.retain, count: perPrompt, split: .train) }
    /// Retain renders from a stream no training file uses.
    public var heldout: Tensors { images(concept.retain, count: heldoutPerPrompt, split: .heldout) }

    /// Forget prompts only (no images: the training side draws them from the teacher), each with its
    /// anchored twin (every forget concept replaced by its anchor) for concept ablation. With both
    /// concepts this is one multi-concept forget file: forgetting it forgets both in one pass.
    public var forget: Tensors {
        let prompts = concept.forget
        let s = WorldSize.self
        return Tensors(tensors: [
            ("cond", [prompts.count, s.tokens, s.embeddingDim], prompts.flatMap(\.embedding)),
            ("uncond", [s.tokens, s.embeddingDim], Vocabulary.embed(Vocabulary.unconditionalTokens)),
            ("anchor", [prompts.count, s.tokens, s.embeddingDim], prompts.flatMap { concept.anchored($0).embedding }),
        ], prompts: prompts.map(\.text))
    }

    /// The world's description (`world.json`): sizes, vocabulary and table, prompts, seeds, files.
    public var description: JSONValue {
        if concept != .style { return extendedDescription }
        return .object(sizeMembers + [
            JSONMember("colours", strings(WorldColour.allCases.map(\.rawValue))),
            JSONMember("shapes", strings(WorldShape.base.map(\.rawValue))),
            JSONMember("styles", strings(WorldStyle.allCases.map(\.rawValue))),
            JSONMember("forget_style", .string(WorldStyle.forget.rawValue)),
            JSONMember("anchor_style", .string(WorldStyle.anchor.rawValue)),
            JSONMember("vocabulary", strings(Vocabulary.baseTokens)),
            JSONMember("embedding_table_seed", number(Vocabulary.tableSeed)),
            JSONMember("embedding_table", .array(Vocabulary.baseTable.map { row in .array(row.map { .number("\($0)") }) })),
            JSONMember("uncond_tokens", strings(Vocabulary.unconditionalTokens)),
            JSONMember("prompts", .array(WorldPrompt.all.map { promptDescription($0, forget: $0.isForget) })),
            JSONMember("files", .object([
                JSONMember("all.safetensors", .string("x0, cond, uncond: every prompt x per_prompt (teacher training)")),
                JSONMember("retain.safetensors", .string("x0, cond, uncond: retain prompts x per_prompt, same renders as all")),
                JSONMember("forget.safetensors", .string("cond, uncond, anchor: one row per forget prompt, no images")),
                JSONMember("heldout.safetensors", .string("x0, cond, uncond: retain prompts x heldout_per_prompt, disjoint stream")),
            ])),
        ])
    }
}

extension WorldDataset {
    /// The leading keys of every `world.json`: image and prompt sizes, seed and counts.
    var sizeMembers: [JSONMember] {
        [
            JSONMember("image_size", number(WorldSize.side)),
            JSONMember("channels", number(WorldSize.channels)),
            JSONMember("tokens", number(WorldSize.tokens)),
            JSONMember("embedding_dim", number(WorldSize.embeddingDim)),
            JSONMember("seed", number(seed)),
            JSONMember("per_prompt", number(perPrompt)),
            JSONMember("heldout_per_prompt", number(heldoutPerPrompt)),
        ]
    }

    /// `world.json` of the object worlds: the original keys with the extended shapes, vocabulary, table
    /// and prompts, plus the chosen concepts, the object's anchor and the paraphrase tokens.
    var extendedDescription: JSONValue {
        return .object(sizeMembers + [
            JSONMember("concept", .string(concept.rawValue)),
            JSONMember("forget_concepts", strings(concept.concepts.map(\.token))),
            JSONMember("colours", strings(WorldColour.allCases.map(\.rawValue))),
            JSONMember("shapes", strings(concept.shapes.map(\.rawValue))),
            JSONMember("styles", strings(WorldStyle.allCases.map(\.rawValue))),
            JSONMember("forget_style", .string(WorldStyle.forget.rawValue)),
            JSONMember("anchor_style", .string(WorldStyle.anchor.rawValue)),
            JSONMember("forget_object", .string(WorldShape.object.rawValue)),
            JSONMember("anchor_shape", .string(WorldShape.anchor.rawValue)),
            JSONMember("vocabulary", strings(Vocabulary.tokens)),
            JSONMember("paraphrases", .array(Paraphrase.all.map { p in
                .object([JSONMember("token", .string(p.token)), JSONMember("of", .string(p.concept.token)),
                         JSONMember("cosine", .number(String(format: "%.4f", p.cosine)))])
            })),
            JSONMember("embedding_table_seed", number(Vocabulary.tableSeed)),
            JSONMember("embedding_table", .array(Vocabulary.table.map { row in .array(row.map { .number("\($0)") }) })),
            JSONMember("uncond_tokens", strings(Vocabulary.unconditionalTokens)),
            JSONMember("prompts", .array(concept.prompts.map { promptDescription($0, forget: concept.isForget($0)) })),
            JSONMember("files", .object([
                JSONMember("all.safetensors", .string("x0, cond, uncond: every prompt x per_prompt (teacher training)")),
                JSONMember("retain.safetensors", .string("x0, cond, uncond: prompts showing no forget concept x per_prompt, same renders as all")),
                JSONMember("forget.safetensors", .string("cond, uncond, anchor: one row per forget prompt (any forget concept), no images")),
                JSONMember("heldout.safetensors", .string("x0, cond, uncond: retain prompts x heldout_per_prompt, disjoint stream")),
            ])),
        ])
    }
}

private func number(_ n: some BinaryInteger) -> JSONValue { .number(String(n)) }
private func strings(_ s: [String]) -> JSONValue { .array(s.map { .string($0) }) }

/// One prompt's entry in `world.json`, the same for every concept choice.
private func promptDescription(_ p: WorldPrompt, forget: Bool) -> JSONValue {
    .object([
        JSONMember("text", .string(p.text)),
        JSONMember("tokens", strings(p.tokens)),
        JSONMember("colour", .string(p.colour.rawValue)),
        JSONMember("shape", .string(p.shape.rawValue)),
        JSONMember("style", .string(p.style.rawValue)),
        JSONMember("forget", .bool(forget)),
    ])
}

/// Metadata keys of the world's data files.
public enum WorldMetadataKey {
    /// JSON array of the prompt text of each `cond` row.
    public static let prompts = "dmsurgery.prompts"
}
