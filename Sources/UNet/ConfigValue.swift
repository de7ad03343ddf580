import Foundation
import TensorFormats

/// A config.json value as validation reads it, converted from TensorFormats' strict `JSONParser` (the
/// one JSON reader for checkpoints, configs, scheduler files and state): booleans and numbers stay
/// apart, and duplicate keys are refused instead of merged.
enum ConfigValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([ConfigValue])
    case object([String: ConfigValue])

    init(_ value: JSONValue) {
        switch value {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .number(let text): self = .number(Double(text) ?? .nan)
        case .string(let s): self = .string(s)
        case .array(let items): self = .array(items.map(ConfigValue.init))
        case .object(let members): self = .object(Dictionary(members.map { ($0.key, ConfigValue($0.value)) }, uniquingKeysWith: { a, _ in a }))
        }
    }

    static func parse(_ text: String) throws -> ConfigValue {
        ConfigValue(try JSONParser.parse(text))
    }

    var description: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return String(b)
        case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
        case .string(let s): return "\"\(s)\""
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .object: return "{...}"
        }
    }
}
