import TensorFormats

/// CLIP's tokenizer: the ids `transformers.CLIPTokenizer` (5.24) gives for the same files, padded and
/// truncated as diffusers' pipelines ask (`padding="max_length"`, `truncation=True`).
///
/// formats/tokenizer.md states the whole rule; in short: split out added tokens, normalize (NFC, `\s+` to
/// one space, lower-case), pre-tokenize with OpenAI's pattern, byte-level BPE with `</w>`, then
/// `bos + ids[..<maxLength-2] + eos`, padded to `maxLength` with the pad token's id.
public struct CLIPTokenizer: Sendable {
    let model: BPEModel
    /// Added tokens matched in raw text and in normalized text.
    let rawTokens: [(scalars: [Unicode.Scalar], id: Int32)]
    let normalizedTokens: [(scalars: [Unicode.Scalar], id: Int32)]
    public let addedTokens: [AddedToken]
    public let bosID: Int32
    public let eosID: Int32
    public let padID: Int32
    /// Sequence length after padding and truncation (`model_max_length`, 77 for every CLIP text encoder).
    public let maxLength: Int

    /// The tokenizer of a pipeline's `tokenizer/` folder: vocab.json and merges.txt are required,
    /// tokenizer_config.json and special_tokens_map.json optional. tokenizer.json is not read.
    public init(folder: String) throws(CLIPError) {
        let vocabPath = folder + "/vocab.json", mergesPath = folder + "/merges.txt"
        let configPath = folder + "/tokenizer_config.json", mapPath = folder + "/special_tokens_map.json"
        for path in [vocabPath, mergesPath] where !TokenizerFiles.exists(path) {
            throw CLIPError(.tokenizerMissingFile, "a CLIP tokenizer folder needs vocab.json and merges.txt", file: path)
        }
        let vocabulary = try Self.readVocabulary(vocabPath)
        let mergeLines = try Self.readMergeLines(mergesPath)
        let config = try TokenizerConfig(
            configPath: TokenizerFiles.exists(configPath) ? configPath : nil,
            mapPath: TokenizerFiles.exists(mapPath) ? mapPath : nil)
        try self.init(vocabulary: vocabulary, mergeLines: mergeLines, mergesFile: mergesPath, config: config, configFile: configPath)
    }

    /// The tokenizer transformers builds from open_clip's `bpe_simple_vocab_16e6.txt.gz`: merges are lines
    /// 1...48894 of the file, the vocabulary the 256 byte characters, the same with `</w>`, one entry per
    /// merge, then `<|startoftext|>` and `<|endoftext|>` (49408 entries); special tokens are plain strings.
    public init(openCLIPVocabulary path: String, padToken: String = "<|endoftext|>", maxLength: Int = 77) throws(CLIPError) {
        let text = try TokenizerFiles.utf8(TokenizerFiles.gunzip(path), path)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let mergeCount = 49152 - 256 - 2
        guard lines.count > mergeCount else {
            throw CLIPError(.tokenizerBadMerges, "has \(lines.count) lines; open_clip reads merges from lines 1...\(mergeCount)", file: path)
        }
        let mergeLines = lines[1...mergeCount].map(String.init)
        var entries: [String] = ByteLevel.vocabularyOrder.map { ByteLevel.characters[$0] }
        entries += entries.map { $0 + BPEModel.endOfWord }
        for (index, line) in mergeLines.enumerated() {
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw CLIPError(.tokenizerBadMerges, "line \(index + 2): a merge is two tokens separated by one space", file: path)
            }
            entries.append(parts.joined())
        }
        entries += ["<|startoftext|>", "<|endoftext|>"]
        var vocabulary: [String: Int32] = [:]
        for (id, entry) in entries.enumerated() { vocabulary[entry] = Int32(id) }
        guard maxLength >= 3, maxLength <= TokenizerConfig.maximumLength else {
            throw CLIPError(.tokenizerBadConfig, "maximum length must be in 3...\(TokenizerConfig.maximumLength)", file: path)
        }
        var config = TokenizerConfig.defaultConfig(padToken: padToken)
        config.maxLength = maxLength
        try self.init(vocabulary: vocabulary, mergeLines: mergeLines, mergesFile: path, config: config, configFile: path)
    }

    init(vocabulary: [String: Int32], mergeLines: [String], mergesFile: String, config: TokenizerConfig, configFile: String) throws(CLIPError) {
        var merges: [UInt64: (rank: Int32, merged: Int32)] = [:]
        merges.reserveCapacity(mergeLines.count)
        var rank: Int32 = 0
        for (index, line) in mergeLines.enumerated() {
            if line.hasPrefix("#version") { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw CLIPError(.tokenizerBadMerges, "line \(index + 1): a merge is two tokens separated by one space", file: mergesFile)
            }
            let left = String(parts[0]), right = String(parts[1])
            for token in [left, right, left + right] where vocabulary[token] == nil {
                throw CLIPError(.tokenizerBadMerges, "line \(index + 1): token '\(token)' is not in the vocabulary", file: mergesFile)
            }
            merges[BPEModel.key(vocabulary[left]!, vocabulary[right]!)] = (rank, vocabulary[left + right]!)
            rank += 1
        }
        let unknown = config.named["unk_token"]!.content
        model = BPEModel(vocabulary: vocabulary, merges: merges, unknownToken: unknown)

        // Register added tokens as tokenizers does: existing vocabulary ids, otherwise the next free id.
        var added: [AddedToken] = []
        var nextID = Int32(clamping: vocabulary.count)
        func register(_ token: TokenizerConfig.Named, preferredID: Int32?) throws(CLIPError) {
            if let index = added.firstIndex(where: { $0.content == token.content }) {
                added[index].normalized = token.normalized
                return
            }
            let id: Int32
            if let existing = vocabulary[token.content] {
                id = existing
            } else if let preferredID, preferredID == nextID {
                id = preferredID
                nextID += 1
            } else if preferredID == nil {
                id = nextID
                nextID += 1
            } else {
                throw CLIPError(.tokenizerUnsupported, "added token '\(token.content)' has id \(preferredID!) but is not in the vocabulary and is not the next free id \(nextID)", file: configFile, tensor: "added_tokens_decoder")
            }
            added.append(AddedToken(content: token.content, id: id, normalized: token.normalized))
        }
        for entry in config.decoder { try register(entry.token, preferredID: entry.id) }
        for key in TokenizerConfig.names {
            if let token = config.named[key] { try register(token, preferredID: nil) }
        }
        addedTokens = added
        rawTokens = added.filter { !$0.normalized }.map { (Array($0.content.unicodeScalars), $0.id) }
        normalizedTokens = added.filter(\.normalized).map { (TextPipeline.normalize($0.content), $0.id) }
        func id(_ key: String) -> Int32 { added.first { $0.content == config.named[key]!.content }!.id }
        bosID = id("bos_token")
        eosID = id("eos_token")
        padID = id("pad_token")
        maxLength = config.maxLength
    }

    /// The ids of `text` without start, end or padding, stopping once `limit` ids are known (the ids
    /// after a truncation point never depend on text beyond it, so a long prompt costs no more).
    public func tokenize(_ text: String, limit: Int = .max) throws(CLIPError) -> [Int32] {
        var ids: [Int32] = []
        for rawPiece in AddedTokenSplitter.split(Array(text.unicodeScalars), on: rawTokens) {
            if ids.count >= limit { break }
            switch rawPiece {
            case .token(let id): ids.append(id)
            case .text(let scalars):
                let normalized = TextPipeline.normalize(String(String.UnicodeScalarView(scalars)))
                for piece in AddedTokenSplitter.split(normalized, on: normalizedTokens) {
                    if ids.count >= limit { break }
                    switch piece {
                    case .token(let id): ids.append(id)
                    case .text(let segment):
                        for word in TextPipeline.preTokenize(segment) {
                            if ids.count >= limit { break }
                            guard let wordIDs = model.encode(word: word) else {
                                throw CLIPError(.tokenizerBadVocab, "a byte of the prompt has no vocabulary entry and the unknown token is not in the vocabulary")
                            }
                            ids += wordIDs
                        }
                    }
                }
            }
        }
        return ids.count > limit ? Array(ids[..<limit]) : ids
    }

    /// `bos + ids + eos`, truncated to `maxLength` and padded with the pad id: the `input_ids` of
    /// `tokenizer(text, padding="max_length", max_length=maxLength, truncation=True)`.
    public func inputIDs(_ text: String) throws(CLIPError) -> [Int32] {
        var ids = [bosID] + (try tokenize(text, limit: maxLength - 2)) + [eosID]
        ids += [Int32](repeating: padID, count: maxLength - ids.count)
        return ids
    }

    /// The vocabulary size (entries in vocab.json), which a text encoder's embedding must cover.
    public var vocabularySize: Int { model.vocabulary.count }

    static func readVocabulary(_ path: String) throws(CLIPError) -> [String: Int32] {
        guard case .object(let members) = try TokenizerFiles.json(path) else {
            throw CLIPError(.tokenizerBadVocab, "must be a JSON object of token -> id", file: path)
        }
        var vocabulary: [String: Int32] = [:]
        vocabulary.reserveCapacity(members.count)
        for member in members {
            guard let id = member.value.intValue, id >= 0, id < Int(Int32.max) else {
                throw CLIPError(.tokenizerBadVocab, "id of '\(member.key)' must be an integer in 0..<\(Int32.max)", file: path)
            }
            vocabulary[member.key] = Int32(id)
        }
        return vocabulary
    }

    static func readMergeLines(_ path: String) throws(CLIPError) -> [String] {
        var lines = try TokenizerFiles.text(path).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        // Rust's `BufRead::lines`, which tokenizers reads merges with, also drops a "\r" before "\n".
        return lines.map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
    }
}
