/// GPT-2's byte-to-character table, which CLIP's vocabulary is written in.
///
/// Every byte maps to one printable character so that BPE works on strings without whitespace or control
/// characters: the printable Latin-1 bytes map to themselves and the other 68 to U+0100 onwards, in byte
/// order (OpenAI's `bytes_to_unicode`, tokenizers' `ByteLevel`).
enum ByteLevel {
    static let characters: [String] = {
        var printable = [Bool](repeating: false, count: 256)
        for range in [0x21...0x7E, 0xA1...0xAC, 0xAE...0xFF] { for b in range { printable[b] = true } }
        var table = [String](repeating: "", count: 256)
        var next = 256
        for b in 0..<256 {
            if printable[b] {
                table[b] = String(Character(Unicode.Scalar(UInt8(b))))
            } else {
                table[b] = String(Character(Unicode.Scalar(UInt32(next))!))
                next += 1
            }
        }
        return table
    }()
}

extension ByteLevel {
    /// The bytes in the order OpenAI's dictionary lists them (printable bytes first, then the rest): the
    /// order of the first 256 vocabulary entries built from `bpe_simple_vocab_16e6.txt.gz`.
    static let vocabularyOrder: [Int] = {
        let printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        let set = Set(printable)
        return printable + (0..<256).filter { !set.contains($0) }
    }()
}
