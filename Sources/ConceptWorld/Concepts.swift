/// One concept the world can forget: the style `stripes` (the copyrighted artist style) or the object
/// `cross` (the unsafe object: a shape the teacher draws and no retain data shows).
public enum ForgetConcept: String, CaseIterable, Sendable {
    case style, object

    /// The vocabulary token that asks for the concept.
    public var token: String {
        switch self {
        case .style: WorldStyle.forget.rawValue
        case .object: WorldShape.object.rawValue
        }
    }

    /// Position of that token in a prompt's `[<start>, colour, shape, style]`: the slot a paraphrase
    /// or an adversarial embedding replaces.
    public var slot: Int {
        switch self {
        case .style: 3
        case .object: 2
        }
    }

    /// Whether the prompt asks for the concept.
    public func isAsked(by prompt: WorldPrompt) -> Bool {
        switch self {
        case .style: prompt.style == WorldStyle.forget
        case .object: prompt.shape == WorldShape.object
        }
    }

    /// Whether the detectors see the concept in a sample.
    public func isShown(in detection: Detection) -> Bool {
        switch self {
        case .style: detection.style == WorldStyle.forget
        case .object: detection.shape == WorldShape.object
        }
    }

    /// The paraphrase token of the concept.
    public var paraphrase: Paraphrase { Paraphrase.all.first { $0.concept == self }! }
}

/// Which concepts a world forgets (`--concept`): `style` is the original world, byte for byte.
public enum WorldConcept: String, CaseIterable, Sendable {
    case style, object, both

    public var concepts: [ForgetConcept] {
        switch self {
        case .style: [.style]
        case .object: [.object]
        case .both: [.style, .object]
        }
    }

    /// The shapes drawn in this world: the object's only where it is in play, so the style world's
    /// prompts, files and detector readings are the original ones.
    public var shapes: [WorldShape] { self == .style ? WorldShape.base : WorldShape.allCases }

    /// Every prompt: the original 36 in their order, then (object worlds) the 12 cross prompts.
    public var prompts: [WorldPrompt] { self == .style ? WorldPrompt.all : WorldPrompt.extended }

    /// Prompts asking for any of the chosen concepts.
    public func isForget(_ prompt: WorldPrompt) -> Bool { concepts.contains { $0.isAsked(by: prompt) } }

    public var forget: [WorldPrompt] { prompts.filter(isForget) }
    /// Prompts showing none of the chosen concepts: the students' data.
    public var retain: [WorldPrompt] { prompts.filter { !isForget($0) } }

    /// The prompt with each chosen concept replaced by its anchor (`flat` for the style, `square` for
    /// the object): the target of concept ablation.
    public func anchored(_ prompt: WorldPrompt) -> WorldPrompt {
        var p = prompt
        if concepts.contains(.style), p.style == WorldStyle.forget { p.style = WorldStyle.anchor }
        if concepts.contains(.object), p.shape == WorldShape.object { p.shape = WorldShape.anchor }
        return p
    }
}

/// A token near a concept's embedding that no data file ever holds: the concept's row plus uniform
/// noise of half-width `noise` per value from a seed of its own. It tests whether forgetting reaches
/// the neighbourhood of the token or only the token itself.
public struct Paraphrase: Sendable {
    public var token: String
    public var concept: ForgetConcept
    /// Half-width of the uniform noise added to each of the concept row's values.
    public var noise: Float
    public var seed: UInt64

    /// `stripy` for `stripes`, `plus` for `cross`: noise 0.35 (the table's values span [-1, 1)).
    public static let all = [
        Paraphrase(token: "stripy", concept: .style, noise: 0.35, seed: 0x5354_5249_5059_0001),
        Paraphrase(token: "plus", concept: .object, noise: 0.35, seed: 0x504C_5553_0000_0002),
    ]

    func embedding(near row: [Float]) -> [Float] {
        var rng = WorldRandom(seed: seed)
        return row.map { $0 + noise * Vocabulary.uniform(rng.next()) }
    }

    /// Cosine similarity of the paraphrase's embedding with its concept's.
    public var cosine: Double {
        let a = Vocabulary.embedding(of: token), b = Vocabulary.embedding(of: concept.token)
        let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let na = a.reduce(0.0) { $0 + Double($1) * Double($1) }, nb = b.reduce(0.0) { $0 + Double($1) * Double($1) }
        return dot / (na * nb).squareRoot()
    }
}
