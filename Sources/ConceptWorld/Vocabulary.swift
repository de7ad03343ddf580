import TensorMath

/// The fixed sizes every model of the concept world is built around: one place, so the data files,
/// the evaluation and the teacher's config cannot drift apart.
public enum WorldSize {
    /// Images are `channels` x `side` x `side`, values in [-1, 1], NCHW.
    public static let side = 16
    public static let channels = 3
    /// Prompts are `tokens` embeddings of `embeddingDim` values: [start, colour, shape, style].
    public static let tokens = 4
    public static let embeddingDim = 32
    public static var pixels: Int { channels * side * side }
}

/// The world's only source of randomness: TensorMath's `SplitMix64` (not Foundation's generators, whose
/// algorithm is unspecified), so that a seed gives the same bytes on every machine.
public struct WorldRandom: Sendable {
    private var generator: SplitMix64

    public init(seed: UInt64) { generator = SplitMix64(state: seed) }

    /// A generator for one item of one stream: seeds are mixed, not added, so neighbouring
    /// (seed, split, prompt, index) tuples give unrelated sequences.
    public init(stream parts: [UInt64]) {
        var s: UInt64 = 0x243F_6A88_85A3_08D3
        for part in parts {
            var mixer = WorldRandom(seed: s ^ part)
            s = mixer.next()
        }
        generator = SplitMix64(state: s)
    }

    public mutating func next() -> UInt64 { generator.next() }

    /// Uniform in `range` (modulo bias is irrelevant for ranges this small).
    public mutating func int(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }
}

/// Attribute values of the world; raw values are the prompt words and vocabulary tokens.
public enum WorldColour: String, CaseIterable, Sendable, Codable {
    case red, green, blue

    /// The RGB channel that carries the colour.
    public var channel: Int {
        switch self {
        case .red: 0
        case .green: 1
        case .blue: 2
        }
    }
}

/// `cross` is the object concept (issue 14): the extended world's teacher draws it, no retain data
/// shows it. It comes last so the original shapes keep their order, indices and table rows.
public enum WorldShape: String, CaseIterable, Sendable, Codable {
    case square, circle, triangle, cross

    /// The shapes of the original world (`--concept style`): every prompt, file and detector reading
    /// there is as before the object concept existed.
    public static let base: [WorldShape] = [.square, .circle, .triangle]
    /// The object concept and the shape concept ablation maps it to.
    public static let object = WorldShape.cross
    public static let anchor = WorldShape.square
}

/// Renderings of a shape. `stripes` plays the copyrighted artist style (the forget concept), `flat` is
/// the anchor that concept ablation maps it to.
public enum WorldStyle: String, CaseIterable, Sendable, Codable {
    case flat, outline, stripes, checker

    public static let forget = WorldStyle.stripes
    public static let anchor = WorldStyle.flat
}

/// The token list and the fixed embedding table that stands in for a text encoder.
///
/// The table does not depend on the world's `--seed`: every data file and every model of the project
/// share one "text encoder", as a real pipeline shares CLIP.
public enum Vocabulary {
    public static let start = "<start>"
    public static let pad = "<pad>"

    /// The original world's 12 tokens (what `world --concept style` lists).
    public static let baseTokens: [String] = [start, pad]
        + WorldColour.allCases.map(\.rawValue)
        + WorldShape.base.map(\.rawValue)
        + WorldStyle.allCases.map(\.rawValue)

    /// Every token: the base ones, the object concept's shape, then the paraphrases (never in any
    /// training data). Appending keeps the base rows of the table unchanged.
    public static let tokens: [String] = baseTokens + [WorldShape.object.rawValue] + Paraphrase.all.map(\.token)

    /// Seed of the embedding table (ASCII "dmsworld").
    public static let tableSeed: UInt64 = 0x646D_7377_6F72_6C64

    /// Row i embeds token i: SplitMix64 from `tableSeed`, each value the top 24 bits of one draw mapped
    /// to [-1, 1) as (k - 2^23) / 2^23, which is exact in float32 on every machine. Drawn rows continue
    /// one stream (the object's row is the 13th draw of 32), so the first 12 are the original table; a
    /// paraphrase row is its concept's row plus noise (`Paraphrase`).
    public static let table: [[Float]] = {
        var rng = WorldRandom(seed: tableSeed)
        let drawn = (0..<(baseTokens.count + 1)).map { _ in
            (0..<WorldSize.embeddingDim).map { _ in uniform(rng.next()) }
        }
        let drawnTokens = baseTokens + [WorldShape.object.rawValue]
        return drawn + Paraphrase.all.map { p in p.embedding(near: drawn[drawnTokens.firstIndex(of: p.concept.token)!]) }
    }()

    /// The table's first 12 rows: the original world's.
    public static var baseTable: [[Float]] { Array(table.prefix(baseTokens.count)) }

    /// The top 24 bits of a draw as a value in [-1, 1), exact in float32.
    static func uniform(_ draw: UInt64) -> Float {
        Float(Int(draw >> 40) - (1 << 23)) / Float(1 << 23)
    }

    public static func embedding(of token: String) -> [Float] {
        guard let index = tokens.firstIndex(of: token) else { preconditionFailure("token '\(token)' is not in the vocabulary") }
        return table[index]
    }

    /// Concatenated embeddings [S * D] of a token sequence.
    public static func embed(_ sequence: [String]) -> [Float] {
        sequence.flatMap(embedding(of:))
    }

    /// The empty prompt, the unconditional input of classifier-free guidance.
    public static let unconditionalTokens = [start, pad, pad, pad]
}
