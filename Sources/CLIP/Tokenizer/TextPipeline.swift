import Foundation

/// transformers' CLIPTokenizer text pipeline before BPE: its normalizer and pre-tokenizer.
///
/// transformers 5's CLIPTokenizer is backed by the tokenizers library and does not call ftfy (even when
/// installed): the normalizer is NFC, every `\s+` run to one space, then lower-casing character by
/// character (Rust's `char::to_lowercase`: full mappings, no final-sigma context). The pre-tokenizer
/// keeps the matches of OpenAI's pattern
/// `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
/// (whitespace between them is dropped), then the ByteLevel pre-tokenizer splits each match again with
/// GPT-2's pattern, which only changes the two special-token literals (`<|`, the letters, `|>`).
/// `\s` is Unicode White_Space, as Oniguruma (the regex engine behind tokenizers) reads it.
enum TextPipeline {
    static func normalize(_ text: String) -> [Unicode.Scalar] {
        let composed = text.precomposedStringWithCanonicalMapping
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(composed.unicodeScalars.count)
        var inSpace = false
        for scalar in composed.unicodeScalars {
            if scalar.properties.isWhitespace {
                if !inSpace { out.append(" ") }
                inSpace = true
                continue
            }
            inSpace = false
            out.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
        }
        return out
    }

    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    private static let contractions: [[Unicode.Scalar]] = ["s", "t", "re", "ve", "m", "ll", "d"].map { Array($0.unicodeScalars) }
    private static let specialLiterals: [(whole: [Unicode.Scalar], name: String)] = [
        (Array("<|startoftext|>".unicodeScalars), "startoftext"),
        (Array("<|endoftext|>".unicodeScalars), "endoftext"),
    ]

    /// The words of a normalized segment, each as its UTF-8 bytes, in order.
    static func preTokenize(_ s: [Unicode.Scalar]) -> [[UInt8]] {
        var words: [[UInt8]] = []
        func emit(_ range: Range<Int>) {
            var bytes: [UInt8] = []
            for scalar in s[range] { bytes.append(contentsOf: String(scalar).utf8) }
            words.append(bytes)
        }
        var i = 0
        while i < s.count {
            let c = s[i]
            if let literal = specialLiterals.first(where: { matches($0.whole, in: s, at: i) }) {
                let nameEnd = i + 2 + literal.name.unicodeScalars.count
                emit(i..<(i + 2))
                emit((i + 2)..<nameEnd)
                emit(nameEnd..<(i + literal.whole.count))
                i += literal.whole.count
            } else if c == "'", let tail = contractions.first(where: { matches($0, in: s, at: i + 1) }) {
                emit(i..<(i + 1 + tail.count))
                i += 1 + tail.count
            } else if isLetter(c) {
                var j = i + 1
                while j < s.count, isLetter(s[j]) { j += 1 }
                emit(i..<j)
                i = j
            } else if isNumber(c) {
                emit(i..<(i + 1))
                i += 1
            } else if c.properties.isWhitespace {
                i += 1
            } else {
                var j = i + 1
                while j < s.count, !isLetter(s[j]), !isNumber(s[j]), !s[j].properties.isWhitespace { j += 1 }
                emit(i..<j)
                i = j
            }
        }
        return words
    }

    static func matches(_ pattern: [Unicode.Scalar], in s: [Unicode.Scalar], at i: Int) -> Bool {
        guard i + pattern.count <= s.count else { return false }
        for k in 0..<pattern.count where s[i + k] != pattern[k] { return false }
        return true
    }
}
