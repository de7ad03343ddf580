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

    /// The tokenizer of a pipeline's `tokenizer/` folder: `tokenizer.json` (what transformers 5 saves)
    /// or `vocab.json` + `merges.txt` (what earlier versions saved; used only without tokenizer.json, as
    /// transformers does), with `tokenizer_config.json` and `special_tokens_map.json` when present.
    public init(folder: String) throws(CLIPError) {
        let vocabPath = folder + "/vocab.json", mergesPath = folder + "/merges.txt", jsonPath = folder + "/tokenizer.json"
        let configPath = folder + "/tokenizer_config.json", mapPath = folder + "/special_tokens_map.json"
        let vocabulary: [String: Int32], merges: [(left: String, right: String, line: Int)], mergesFile: String
        var fileDecoder: [(id: Int32, token: TokenizerConfig.Named)] = []
        if TokenizerFiles.exists(jsonPath) {
            (vocabulary, merges, fileDecoder) = try Self.readTokenizerJSON(jsonPath)
            mergesFile = jsonPath
        } else {
            for path in [vocabPath, mergesPath] where !TokenizerFiles.exists(path) {
                throw CLIPError(.tokenizerMissingFile, "a CLIP tokenizer folder needs tokenizer.json, or vocab.json and merges.txt", file: path)
            }
            vocabulary = try Self.readVocabulary(vocabPath)
            merges = try Self.parseMerges(Self.readMergeLines(mergesPath), file: mergesPath, firstLine: 1)
            mergesFile = mergesPath
        }
        let config = try TokenizerConfig(
            configPath: TokenizerFiles.exists(configPath) ? configPath : nil,
            mapPath: TokenizerFiles.exists(mapPath) ? mapPath : nil, fileDecoder: fileDecoder)
        try self.init(vocabulary: vocabulary, merges: merges, mergesFile: mergesFile, config: config, configFile: configPath)
    }

    /// The tokenizer transformers builds from open_clip's `bpe_simple_vocab_16e6.txt.gz`: merges are lines
    /// 1...48894 of the file, the vocabulary the 256 byte characters, the same with `</w>`, one entry per
    /// merge, then `<|startoftext|>` and `<|endoftext|>` (49408 entries); special tokens are plain strings.
    public init(openCLIPVocabulary path: String, padToken: String = "<|endoftext|>", maxLength: Int = 77) throws(CLIPError) {
        let text = try TokenizerFiles.utf8(TokenizerFiles.gunzip(path), path)
        let lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { String(String.UnicodeScalarView($0)) }
        let mergeCount = 49152 - 256 - 2
        guard lines.count > mergeCount else {
            throw CLIPError(.tokenizerBadMerges, "has \(lines.count) lines; open_clip reads merges from lines 1...\(mergeCount)", file: path)
        }
        let merges = try Self.parseMerges(Array(lines[1...mergeCount]), file: path, firstLine: 2)
        var entries: [String] = ByteLevel.vocabularyOrder.map { ByteLevel.characters[$0] }
        entries += entries.map { $0 + BPEModel.endOfWord }
        entries += merges.map { $0.left + $0.right }
        entries += ["<|startoftext|>", "<|endoftext|>"]
        var vocabulary: [String: Int32] = [:]
        for (id, entry) in entries.enumerated() { vocabulary[entry] = Int32(id) }
        guard maxLength >= 3, maxLength <= TokenizerConfig.maximumLength else {
            throw CLIPError(.tokenizerBadConfig, "maximum length must be in 3...\(TokenizerConfig.maximumLength)", file: path)
        }
        var config = TokenizerConfig.defaultConfig(padToken: padToken)
        config.maxLength = maxLength
        try self.init(vocabulary: vocabulary, merges: merges, mergesFile: path, config: config, configFile: path)
    }

    init(vocabulary: [String: Int32], merges pairs: [(left: String, right: String, line: Int)], mergesFile: String,
         config: TokenizerConfig, configFile: String) throws(CLIPError) {
        var merges: [UInt64: (rank: Int32, merged: Int32)] = [:]
        merges.reserveCapacity(pairs.count)
        for (rank, pair) in pairs.enumerated() {
            for token in [pair.left, pair.right, pair.left + pair.right] where vocabulary[token] == nil {
                throw CLIPError(.tokenizerBadMerges, "line \(pair.line): token '\(token)' is not in the vocabulary", file: mergesFile)
            }
            merges[BPEModel.key(vocabulary[pair.left]!, vocabulary[pair.right]!)] = (Int32(rank), vocabulary[pair.left + pair.right]!)
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

    /// Merge lines as tokenizers reads them: `#version` lines skipped, every other line exactly two tokens
    /// separated by one space; `firstLine` is the file line number of `lines[0]`, for messages.
    static func parseMerges(_ lines: [String], file: String, firstLine: Int) throws(CLIPError) -> [(left: String, right: String, line: Int)] {
        var pairs: [(left: String, right: String, line: Int)] = []
        pairs.reserveCapacity(lines.count)
        for (index, line) in lines.enumerated() {
            if line.hasPrefix("#version") { continue }
            let parts = line.unicodeScalars.split(separator: " ", omittingEmptySubsequences: false).map { String(String.UnicodeScalarView($0)) }
            guard parts.count == 2 else {
                throw CLIPError(.tokenizerBadMerges, "line \(index + firstLine): a merge is two tokens separated by one space", file: file)
            }
            pairs.append((String(parts[0]), String(parts[1]), index + firstLine))
        }
        return pairs
    }

    /// vocab, merges and added tokens of a tokenizers `tokenizer.json` whose model is CLIP's BPE.
    static func readTokenizerJSON(_ path: String) throws(CLIPError) -> ([String: Int32], [(left: String, right: String, line: Int)], [(id: Int32, token: TokenizerConfig.Named)]) {
        let json = try TokenizerFiles.json(path)
        guard let model = json["model"], model["type"]?.stringValue == "BPE", model["end_of_word_suffix"]?.stringValue == BPEModel.endOfWord else {
            throw CLIPError(.tokenizerUnsupported, "the model is not CLIP's BPE (type BPE, end_of_word_suffix </w>)", file: path, tensor: "model")
        }
        guard case .object(let members)? = model["vocab"] else {
            throw CLIPError(.tokenizerBadVocab, "model.vocab must be an object of token -> id", file: path, tensor: "model.vocab")
        }
        var vocabulary: [String: Int32] = [:]
        for member in members {
            guard let id = member.value.intValue, id >= 0, id < Int(Int32.max) else {
                throw CLIPError(.tokenizerBadVocab, "id of '\(member.key)' must be an integer in 0..<\(Int32.max)", file: path, tensor: "model.vocab")
            }
            vocabulary[member.key] = Int32(id)
        }
        guard case .array(let items)? = model["merges"] else {
            throw CLIPError(.tokenizerBadMerges, "model.merges must be an array", file: path, tensor: "model.merges")
        }
        var merges: [(left: String, right: String, line: Int)] = []
        for (index, item) in items.enumerated() {
            if let text = item.stringValue {
                merges += try parseMerges([text], file: path, firstLine: index + 1)
            } else if case .array(let pair) = item, pair.count == 2, let left = pair[0].stringValue, let right = pair[1].stringValue {
                merges.append((left, right, index + 1))
            } else {
                throw CLIPError(.tokenizerBadMerges, "merge \(index + 1) is not \"a b\" or [\"a\", \"b\"]", file: path, tensor: "model.merges")
            }
        }
        var added: [(id: Int32, token: TokenizerConfig.Named)] = []
        if case .array(let tokens)? = json["added_tokens"] {
            for token in tokens {
                guard let id = token["id"]?.intValue, id >= 0, id < Int(Int32.max) else {
                    throw CLIPError(.tokenizerBadConfig, "an added token needs an integer id", file: path, tensor: "added_tokens")
                }
                added.append((Int32(id), try TokenizerConfig.token(token, specialByDefault: false, file: path, key: "added_tokens")))
            }
        }
        return (vocabulary, merges, added.sorted { $0.id < $1.id })
    }

    static func readMergeLines(_ path: String) throws(CLIPError) -> [String] {
        // Split on scalars: Swift's Character treats "\r\n" as one, which a Character split would miss.
        var lines = try TokenizerFiles.text(path).unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
            .map { String(String.UnicodeScalarView($0)) }
        if lines.last == "" { lines.removeLast() }
        // Rust's `BufRead::lines`, which tokenizers reads merges with, also drops a "\r" before "\n".
        return lines.map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
    }
}
