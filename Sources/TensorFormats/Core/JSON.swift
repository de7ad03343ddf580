/// A JSON value that keeps object members in their written order.
///
/// Checkpoint headers need three things Foundation's JSONSerialization does not give: duplicate keys
/// reported instead of silently merged (safetensors issue #401), member order kept (the reference
/// writer's metadata order must survive a round trip), and numbers kept as written (dims are u64).
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number's literal text, validated against the JSON grammar.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([JSONMember])

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first(where: { $0.key == key })?.value
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value as a non-negative integer when it is written as one (no sign, fraction or exponent).
    public var unsignedValue: UInt64? {
        guard case .number(let text) = self, !text.isEmpty,
              text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return UInt64(text)
    }

    public var intValue: Int? {
        guard case .number(let text) = self else { return nil }
        return Int(text)
    }

    public var doubleValue: Double? {
        guard case .number(let text) = self else { return nil }
        return Double(text)
    }
}

public struct JSONMember: Sendable, Equatable {
    public var key: String
    public var value: JSONValue
    public init(_ key: String, _ value: JSONValue) {
        self.key = key
        self.value = value
    }
}

/// Why a JSON text was refused; the caller turns it into its own error with file context.
public struct JSONParseError: Error, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case syntax
        /// `parent` is the key of the enclosing object (nil at the top level).
        case duplicateKey(String, parent: String?)
        case notUTF8
    }
    public var kind: Kind
    public var message: String
    public var offset: Int
}

/// A strict RFC 8259 parser over UTF-8 bytes.
///
/// Accepts exactly what serde_json accepts for a header: whitespace around the value, no trailing
/// data, no comments, no lone surrogates, no raw control characters in strings.
public struct JSONParser {
    /// Nesting beyond this is refused so that hostile input cannot exhaust the stack.
    public static let maximumDepth = 128

    private let bytes: UnsafeRawBufferPointer
    private var position = 0
    private let rejectDuplicateKeys: Bool

    public static func parse(_ bytes: UnsafeRawBufferPointer, rejectDuplicateKeys: Bool = true) throws(JSONParseError) -> JSONValue {
        var parser = JSONParser(bytes: bytes, rejectDuplicateKeys: rejectDuplicateKeys)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.position == bytes.count else { throw parser.error("trailing characters after the JSON value") }
        return value
    }

    public static func parse(_ text: String, rejectDuplicateKeys: Bool = true) throws(JSONParseError) -> JSONValue {
        let bytes = Array(text.utf8)
        let result: Result<JSONValue, JSONParseError> = bytes.withUnsafeBytes { raw in
            Result { () throws(JSONParseError) in try parse(raw, rejectDuplicateKeys: rejectDuplicateKeys) }
        }
        return try result.get()
    }

    private init(bytes: UnsafeRawBufferPointer, rejectDuplicateKeys: Bool) {
        self.bytes = bytes
        self.rejectDuplicateKeys = rejectDuplicateKeys
    }

    private func error(_ message: String) -> JSONParseError {
        JSONParseError(kind: .syntax, message: "\(message) at byte \(position)", offset: position)
    }

    private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { position += 1 }
    }

    private mutating func expect(_ literal: StaticString) throws(JSONParseError) {
        let count = literal.utf8CodeUnitCount
        guard position + count <= bytes.count else { throw error("unexpected end of input") }
        for i in 0..<count where bytes[position + i] != literal.utf8Start[i] {
            throw error("invalid literal")
        }
        position += count
    }

    private mutating func parseValue(depth: Int, key: String? = nil) throws(JSONParseError) -> JSONValue {
        guard depth < JSONParser.maximumDepth else { throw error("nesting deeper than \(JSONParser.maximumDepth)") }
        guard let byte = current else { throw error("unexpected end of input") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject(depth: depth, key: key)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw error("unexpected character")
        }
    }

    private mutating func parseObject(depth: Int, key parentKey: String?) throws(JSONParseError) -> JSONValue {
        position += 1
        var members: [JSONMember] = []
        var seen: Set<ByteKey> = []
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let keyStart = position
            let key = try parseString()
            if rejectDuplicateKeys {
                guard seen.insert(ByteKey(key)).inserted else {
                    throw JSONParseError(kind: .duplicateKey(key, parent: parentKey), message: "duplicate key '\(key)'", offset: keyStart)
                }
            }
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw error("expected ':'") }
            position += 1
            skipWhitespace()
            let value = try parseValue(depth: depth + 1, key: key)
            members.append(JSONMember(key, value))
            skipWhitespace()
            guard let next = current else { throw error("unexpected end of input") }
            position += 1
            if next == UInt8(ascii: "}") { return .object(members) }
            guard next == UInt8(ascii: ",") else { position -= 1; throw error("expected ',' or '}'") }
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        position += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard let next = current else { throw error("unexpected end of input") }
            position += 1
            if next == UInt8(ascii: "]") { return .array(elements) }
            guard next == UInt8(ascii: ",") else { position -= 1; throw error("expected ',' or ']'") }
        }
    }

    private mutating func parseNumber() throws(JSONParseError) -> String {
        let start = position
        if current == UInt8(ascii: "-") { position += 1 }
        guard let first = current, first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9") else { throw error("invalid number") }
        if first == UInt8(ascii: "0") {
            position += 1
        } else {
            skipDigits()
        }
        if current == UInt8(ascii: ".") {
            position += 1
            guard skipDigits() > 0 else { throw error("invalid number") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard skipDigits() > 0 else { throw error("invalid number") }
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
    }

    @discardableResult
    private mutating func skipDigits() -> Int {
        var count = 0
        while let byte = current, byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
            position += 1
            count += 1
        }
        return count
    }

    private mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        guard position + 4 <= bytes.count else { throw error("unexpected end of input in \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | digit
            position += 1
        }
        return value
    }

    private mutating func parseString() throws(JSONParseError) -> String {
        position += 1
        let start = position
        var scalars = String.UnicodeScalarView()
        var runStart = position
        // Plain runs are copied as bytes (the header was already checked to be UTF-8); escapes are decoded.
        func flush(_ parser: JSONParser, _ end: Int, into view: inout String.UnicodeScalarView) {
            if end > runStart {
                let run = String(decoding: UnsafeRawBufferPointer(rebasing: parser.bytes[runStart..<end]), as: UTF8.self)
                view.append(contentsOf: run.unicodeScalars)
            }
        }
        while true {
            guard let byte = current else { throw error("unterminated string") }
            if byte == UInt8(ascii: "\"") {
                // Most strings (every tensor name) have no escape: one decode, no scalar view.
                if runStart == start {
                    position += 1
                    return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<(position - 1)]), as: UTF8.self)
                }
                flush(self, position, into: &scalars)
                position += 1
                return String(scalars)
            }
            if byte < 0x20 { throw error("control character in string") }
            if byte != UInt8(ascii: "\\") {
                position += 1
                continue
            }
            flush(self, position, into: &scalars)
            position += 1
            guard let escape = current else { throw error("unterminated escape") }
            position += 1
            switch escape {
            case UInt8(ascii: "\""): scalars.append("\"")
            case UInt8(ascii: "\\"): scalars.append("\\")
            case UInt8(ascii: "/"): scalars.append("/")
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "u"):
                let high = try parseHex4()
                var scalarValue = high
                if (0xD800...0xDBFF).contains(high) {
                    guard position + 2 <= bytes.count, bytes[position] == UInt8(ascii: "\\"),
                          bytes[position + 1] == UInt8(ascii: "u") else { throw error("lone surrogate in \\u escape") }
                    position += 2
                    let low = try parseHex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw error("lone surrogate in \\u escape") }
                    scalarValue = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(high) {
                    throw error("lone surrogate in \\u escape")
                }
                guard let scalar = Unicode.Scalar(scalarValue) else { throw error("invalid \\u escape") }
                scalars.append(scalar)
            default:
                position -= 1
                throw error("invalid escape")
            }
            runStart = position
        }
    }
}

/// Serialises JSON the way the checkpoint ecosystem writes it.
public enum JSONWriter {
    /// serde_json's compact form: no spaces; only `"`, `\` and control characters escaped,
    /// control characters as `\n`-style escapes or lower-case `\u00xx`.
    public static func compact(_ value: JSONValue) -> String {
        var out = ""
        write(value, into: &out, style: .compact, level: 0)
        return out
    }

    /// Indented output for `--json` reports: two spaces, `": "` between key and value, members in order.
    public static func pretty(_ value: JSONValue) -> String {
        var out = ""
        write(value, into: &out, style: .pretty, level: 0)
        return out
    }

    /// Python's `json.dumps(value, indent=2)` (ensure_ascii): what huggingface_hub writes for index files.
    public static func python(_ value: JSONValue, indent: Int = 2) -> String {
        var out = ""
        write(value, into: &out, style: .python(indent: indent), level: 0)
        return out
    }

    enum Style { case compact, pretty, python(indent: Int) }

    static func write(_ value: JSONValue, into out: inout String, style: Style, level: Int) {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let text): out += text
        case .string(let s): appendString(s, into: &out, asciiOnly: { if case .python = style { return true }; return false }())
        case .array(let elements):
            if elements.isEmpty { out += "[]"; return }
            out += "["
            for (i, element) in elements.enumerated() {
                if i > 0 { out += "," }
                newline(into: &out, style: style, level: level + 1)
                write(element, into: &out, style: style, level: level + 1)
            }
            newline(into: &out, style: style, level: level)
            out += "]"
        case .object(let members):
            if members.isEmpty { out += "{}"; return }
            out += "{"
            for (i, member) in members.enumerated() {
                if i > 0 { out += "," }
                newline(into: &out, style: style, level: level + 1)
                appendString(member.key, into: &out, asciiOnly: { if case .python = style { return true }; return false }())
                if case .compact = style { out += ":" } else { out += ": " }
                write(member.value, into: &out, style: style, level: level + 1)
            }
            newline(into: &out, style: style, level: level)
            out += "}"
        }
    }

    private static func newline(into out: inout String, style: Style, level: Int) {
        switch style {
        case .compact: return
        case .pretty: out += "\n" + String(repeating: "  ", count: level)
        case .python(let indent): out += "\n" + String(repeating: " ", count: indent * level)
        }
    }

    private static let hexDigits = Array("0123456789abcdef".unicodeScalars)

    /// Appends `s` as a JSON string literal.
    public static func appendString(_ s: String, into out: inout String, asciiOnly: Bool = false) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 || (asciiOnly && scalar.value > 0x7E) {
                    if scalar.value > 0xFFFF {
                        let v = scalar.value - 0x10000
                        appendUnicodeEscape(0xD800 + (v >> 10), into: &out)
                        appendUnicodeEscape(0xDC00 + (v & 0x3FF), into: &out)
                    } else {
                        appendUnicodeEscape(scalar.value, into: &out)
                    }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    private static func appendUnicodeEscape(_ value: UInt32, into out: inout String) {
        out += "\\u"
        for shift in stride(from: 12, through: 0, by: -4) {
            out.unicodeScalars.append(hexDigits[Int((value >> UInt32(shift)) & 0xF)])
        }
    }
}

extension JSONValue {
    public static func int(_ value: Int) -> JSONValue { .number(String(value)) }
    public static func double(_ value: Double) -> JSONValue {
        guard value.isFinite else { return value.isNaN ? .null : .string(value > 0 ? "inf" : "-inf") }
        if value == value.rounded(), abs(value) < 1e15 { return .number(String(Int64(value))) }
        return .number("\(value)")
    }
    public static func strings(_ values: [String]) -> JSONValue { .array(values.map { .string($0) }) }
    public static func ints(_ values: [Int]) -> JSONValue { .array(values.map { .int($0) }) }
}
