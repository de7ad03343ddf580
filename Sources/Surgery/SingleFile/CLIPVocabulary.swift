import TensorFormats

/// transformers' CLIPTokenizer files built from OpenAI's BPE merges (`bpe_simple_vocab_16e6.txt`, which
/// open-clip-torch ships gzipped as `open_clip/bpe_simple_vocab_16e6.txt.gz`), the way open_clip's
/// `SimpleTokenizer` builds its vocabulary: the 256 byte characters of GPT-2's byte-to-unicode table, the
/// same with `</w>`, one token per merge (lines 1..48894 of the file), then `<|startoftext|>` and
/// `<|endoftext|>` (ids 49406, 49407).
public enum CLIPVocabulary {
    /// Merges CLIP uses: 49152 tokens less the 256 + 256 byte tokens and the two special ones, plus one.
    static let mergeCount = 49152 - 256 - 2

    /// GPT-2's printable stand-in for every byte, in the table's own order (printable bytes first).
    static func byteCharacters() -> [String] {
        var bytes = Array(33...126) + Array(161...172) + Array(174...255)
        var codes = bytes
        var extra = 0
        for b in 0..<256 where !bytes.contains(b) {
            bytes.append(b)
            codes.append(256 + extra)
            extra += 1
        }
        return codes.map { String(Character(Unicode.Scalar(UInt32($0))!)) }
    }

    /// The tokenizer folder's files (name, text). `padToken` is SD's `<|endoftext|>` or SDXL's second `!`.
    public static func tokenizerFiles(bpe text: String, padToken: String, file: String) throws -> [(String, String)] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count > mergeCount else {
            throw SurgeryError(.invalidConfig, "a CLIP BPE file has \(mergeCount) merges after its first line; this one has \(max(0, lines.count - 1)) lines", file: file)
        }
        let merges = Array(lines[1...mergeCount])
        var vocabulary = byteCharacters()
        vocabulary += vocabulary.map { $0 + "</w>" }
        for (number, merge) in merges.enumerated() {
            let pair = merge.split(separator: " ", omittingEmptySubsequences: false)
            guard pair.count == 2, !pair[0].isEmpty, !pair[1].isEmpty else {
                throw SurgeryError(.invalidConfig, "line \(number + 2) is not a merge of two symbols", file: file)
            }
            vocabulary.append(String(pair[0] + pair[1]))
        }
        vocabulary += ["<|startoftext|>", "<|endoftext|>"]
        let vocab = JSONValue.object(vocabulary.enumerated().map { JSONMember($1, .int($0)) })
        let special: [JSONMember] = [
            JSONMember("bos_token", .string("<|startoftext|>")),
            JSONMember("eos_token", .string("<|endoftext|>")),
            JSONMember("unk_token", .string("<|endoftext|>")),
            JSONMember("pad_token", .string(padToken)),
        ]
        let config = JSONValue.object(special + [
            JSONMember("tokenizer_class", .string("CLIPTokenizer")),
            JSONMember("model_max_length", .int(77)),
            JSONMember("do_lower_case", .bool(true)),
            JSONMember("errors", .string("replace")),
            JSONMember("add_prefix_space", .bool(false)),
        ])
        return [
            ("vocab.json", JSONWriter.compact(vocab)),
            ("merges.txt", "#version: 0.2\n" + merges.joined(separator: "\n") + "\n"),
            ("special_tokens_map.json", JSONWriter.pretty(.object(special)) + "\n"),
            ("tokenizer_config.json", JSONWriter.pretty(config) + "\n"),
        ]
    }
}
