import TensorFormats

/// The special tokens and length a tokenizer folder configures, resolved as transformers 5 does.
///
/// - With `added_tokens_decoder` in tokenizer_config.json, the named tokens (`bos_token`, ...) come from
///   tokenizer_config.json alone and take the flags of the decoder entry with the same content;
///   special_tokens_map.json is not read.
/// - Without it, special_tokens_map.json's entries override tokenizer_config.json's.
/// - Missing names take CLIPTokenizer's defaults (bos `<|startoftext|>`; eos, unk, pad `<|endoftext|>`).
/// - A plain string is a token with `normalized` false; a dictionary gives its own `normalized` (default:
///   false in special_tokens_map.json, which marks every entry special; `not special` elsewhere).
/// - Every named token is then (re-)registered in the order bos, eos, unk, sep, pad, cls, mask, the last
///   registration of a content setting its flags: SD 1.x's eos `<|endoftext|>` (normalized) is followed by
///   its pad `"<|endoftext|>"` (a string), so the token matches only in raw, un-lower-cased text.
struct TokenizerConfig {
    struct Named {
        var content: String
        var normalized: Bool
    }

    static let names = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]
    static let defaults = ["bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"]
    /// Longest sequence accepted from `model_max_length`: CLIP text encoders have 77 positions, and a
    /// bound keeps a hostile value from sizing the padded id arrays.
    static let maximumLength = 4096

    var named: [String: Named] = [:]
    /// `added_tokens_decoder` entries: id -> token.
    var decoder: [(id: Int32, token: Named)] = []
    var maxLength = 77

    static func defaultConfig(padToken: String) -> TokenizerConfig {
        var config = TokenizerConfig()
        for (key, value) in defaults { config.named[key] = Named(content: value, normalized: false) }
        config.named["pad_token"] = Named(content: padToken, normalized: false)
        return config
    }

    init() {}

    /// `fileDecoder`: the `added_tokens` of tokenizer.json, which act as `added_tokens_decoder` when
    /// tokenizer_config.json has none (their flags stand: transformers keeps them over the names').
    init(configPath: String?, mapPath: String?, fileDecoder: [(id: Int32, token: Named)] = []) throws(CLIPError) {
        let config = try configPath.map { path throws(CLIPError) in try TokenizerFiles.json(path) }
        if let config, let configPath {
            guard case .object = config else { throw CLIPError(.tokenizerBadConfig, "not a JSON object", file: configPath) }
            if let length = config["model_max_length"] {
                guard let value = length.intValue, value >= 3, value <= Self.maximumLength else {
                    throw CLIPError(.tokenizerBadConfig, "model_max_length must be an integer in 3...\(Self.maximumLength)", file: configPath, tensor: "model_max_length")
                }
                maxLength = value
            }
            for key in ["additional_special_tokens", "extra_special_tokens"] {
                if let extra = config[key], extra != .null, extra != .array([]), extra != .object([]) {
                    throw CLIPError(.tokenizerUnsupported, "extra special tokens are not supported", file: configPath, tensor: key)
                }
            }
            if let entries = config["added_tokens_decoder"] {
                guard case .object(let members) = entries else {
                    throw CLIPError(.tokenizerBadConfig, "must be an object of id -> token", file: configPath, tensor: "added_tokens_decoder")
                }
                for member in members {
                    guard let id = Int32(member.key), id >= 0 else {
                        throw CLIPError(.tokenizerBadConfig, "id '\(member.key)' is not a non-negative integer", file: configPath, tensor: "added_tokens_decoder")
                    }
                    decoder.append((id, try Self.token(member.value, specialByDefault: false, file: configPath, key: "added_tokens_decoder.\(member.key)")))
                }
                decoder.sort { $0.id < $1.id }
            }
            if decoder.isEmpty { decoder = fileDecoder }
            for key in Self.names {
                guard let value = config[key], value != .null else { continue }
                var token = try Self.token(value, specialByDefault: false, file: configPath, key: key, requireType: true)
                if let entry = decoder.first(where: { $0.token.content == token.content }) { token = entry.token }
                named[key] = token
            }
        }
        if configPath == nil, decoder.isEmpty { decoder = fileDecoder }
        if decoder.isEmpty, let mapPath {
            let map = try TokenizerFiles.json(mapPath)
            guard case .object = map else { throw CLIPError(.tokenizerBadConfig, "not a JSON object", file: mapPath) }
            for key in ["additional_special_tokens", "extra_special_tokens"] {
                if let extra = map[key], extra != .null, extra != .array([]), extra != .object([]) {
                    throw CLIPError(.tokenizerUnsupported, "extra special tokens are not supported", file: mapPath, tensor: key)
                }
            }
            for key in Self.names {
                guard let value = map[key] else { continue }
                named[key] = try Self.token(value, specialByDefault: true, file: mapPath, key: key)
            }
        }
        for (key, value) in Self.defaults where named[key] == nil {
            named[key] = Named(content: value, normalized: false)
        }
    }

    /// One token value: a string, or a dictionary with `content` and flags this tokenizer supports.
    static func token(_ value: JSONValue, specialByDefault: Bool, file: String, key: String, requireType: Bool = false) throws(CLIPError) -> Named {
        if let content = value.stringValue { return Named(content: content, normalized: false) }
        guard case .object = value, let content = value["content"]?.stringValue else {
            throw CLIPError(.tokenizerBadConfig, "a token must be a string or an object with a string 'content'", file: file, tensor: key)
        }
        if requireType, value["__type"]?.stringValue != "AddedToken" {
            throw CLIPError(.tokenizerBadConfig, "a token object here must have \"__type\": \"AddedToken\"", file: file, tensor: key)
        }
        for flag in ["lstrip", "rstrip", "single_word"] {
            if let v = value[flag], v != .bool(false) {
                throw CLIPError(.tokenizerUnsupported, "only '\(flag)': false is supported", file: file, tensor: key)
            }
        }
        var special = specialByDefault
        if let s = value["special"] {
            guard case .bool(let b) = s else { throw CLIPError(.tokenizerBadConfig, "'special' must be a boolean", file: file, tensor: key) }
            special = specialByDefault || b
        }
        var normalized = !special
        if let n = value["normalized"] {
            guard case .bool(let b) = n else { throw CLIPError(.tokenizerBadConfig, "'normalized' must be a boolean", file: file, tensor: key) }
            normalized = b
        }
        return Named(content: content, normalized: normalized)
    }
}
