/// A token matched as a whole before BPE (transformers' `AddedToken`): CLIP's special tokens.
///
/// tokenizers splits them out of the text first: those with `normalized` false on the raw text, those
/// with `normalized` true on each normalized segment, leftmost and then longest match first. SD 2.x and
/// SDXL's second tokenizer make their pad token "!" such a token, so a "!" in a prompt encodes as 0, not
/// as the BPE word "!</w>" (256): transformers 5.24 does exactly this.
public struct AddedToken: Sendable, Equatable {
    public var content: String
    public var id: Int32
    public var normalized: Bool
}

/// Splitting text around added tokens.
enum AddedTokenSplitter {
    enum Piece {
        case token(Int32)
        case text([Unicode.Scalar])
    }

    /// `text` cut at the leftmost-longest occurrences of `tokens` (each given as its scalars).
    static func split(_ text: [Unicode.Scalar], on tokens: [(scalars: [Unicode.Scalar], id: Int32)]) -> [Piece] {
        guard !tokens.isEmpty else { return [.text(text)] }
        var pieces: [Piece] = []
        var start = 0, i = 0
        while i < text.count {
            var best: (length: Int, id: Int32)?
            for token in tokens where !token.scalars.isEmpty && TextPipeline.matches(token.scalars, in: text, at: i) {
                if best == nil || token.scalars.count > best!.length { best = (token.scalars.count, token.id) }
            }
            if let best {
                if start < i { pieces.append(.text(Array(text[start..<i]))) }
                pieces.append(.token(best.id))
                i += best.length
                start = i
            } else {
                i += 1
            }
        }
        if start < text.count { pieces.append(.text(Array(text[start..<text.count]))) }
        return pieces
    }
}
