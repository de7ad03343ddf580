import TensorFormats

/// Typed, range-checked reads of a model's config.json (a `JSONValue` object), each failure one
/// `CLIPError` naming the file and key.
public struct ConfigReader {
    public let json: JSONValue
    public let file: String

    public init(text: String, file: String) throws(CLIPError) {
        do {
            json = try JSONParser.parse(text)
        } catch {
            throw CLIPError(.modelBadConfig, "config is not valid JSON: \(error.message)", file: file, cause: error)
        }
        guard case .object = json else { throw CLIPError(.modelBadConfig, "config is not a JSON object", file: file) }
        self.file = file
    }

    public func fail(_ key: String, _ message: String) -> CLIPError {
        CLIPError(.modelBadConfig, message, file: file, tensor: key)
    }

    /// An integer in `range`; `defaultValue` when the key is absent or null.
    public func int(_ key: String, in range: ClosedRange<Int>, default defaultValue: Int? = nil) throws(CLIPError) -> Int {
        guard let value = json[key], value != .null else {
            guard let defaultValue else { throw fail(key, "required integer is missing") }
            return defaultValue
        }
        guard let n = value.intValue ?? value.doubleValue.flatMap({ $0 == $0.rounded() && abs($0) < 1e15 ? Int($0) : nil }), range.contains(n) else {
            throw fail(key, "must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }

    /// A finite number in `range`.
    public func double(_ key: String, in range: ClosedRange<Double>, default defaultValue: Double? = nil) throws(CLIPError) -> Double {
        guard let value = json[key], value != .null else {
            guard let defaultValue else { throw fail(key, "required number is missing") }
            return defaultValue
        }
        guard let d = value.doubleValue, d.isFinite, range.contains(d) else {
            throw fail(key, "must be a finite number in \(range.lowerBound)...\(range.upperBound)")
        }
        return d
    }

    public func optionalDouble(_ key: String, in range: ClosedRange<Double>) throws(CLIPError) -> Double? {
        guard let value = json[key], value != .null else { return nil }
        return try double(key, in: range)
    }

    /// One of `allowed`.
    public func string(_ key: String, oneOf allowed: [String], default defaultValue: String? = nil) throws(CLIPError) -> String {
        guard let value = json[key], value != .null else {
            guard let defaultValue else { throw fail(key, "required string is missing") }
            return defaultValue
        }
        guard let s = value.stringValue else { throw fail(key, "must be a string") }
        guard allowed.contains(s) else {
            throw CLIPError(.modelUnsupported, "'\(s)' is not supported (supported: \(allowed.joined(separator: ", ")))", file: file, tensor: key)
        }
        return s
    }

    public func bool(_ key: String, default defaultValue: Bool) throws(CLIPError) -> Bool {
        guard let value = json[key], value != .null else { return defaultValue }
        guard case .bool(let b) = value else { throw fail(key, "must be true or false") }
        return b
    }

    /// An array of integers, each in `range`.
    public func ints(_ key: String, in range: ClosedRange<Int>, default defaultValue: [Int]? = nil) throws(CLIPError) -> [Int] {
        guard let value = json[key], value != .null else {
            guard let defaultValue else { throw fail(key, "required array is missing") }
            return defaultValue
        }
        guard case .array(let items) = value, items.count <= 64 else { throw fail(key, "must be an array of at most 64 integers") }
        var out: [Int] = []
        for item in items {
            guard let n = item.intValue, range.contains(n) else { throw fail(key, "entries must be integers in \(range.lowerBound)...\(range.upperBound)") }
            out.append(n)
        }
        return out
    }

    public func strings(_ key: String, oneOf allowed: [String], default defaultValue: [String]? = nil) throws(CLIPError) -> [String] {
        guard let value = json[key], value != .null else {
            guard let defaultValue else { throw fail(key, "required array is missing") }
            return defaultValue
        }
        guard case .array(let items) = value, items.count <= 64 else { throw fail(key, "must be an array of at most 64 strings") }
        var out: [String] = []
        for item in items {
            guard let s = item.stringValue else { throw fail(key, "entries must be strings") }
            guard allowed.contains(s) else {
                throw CLIPError(.modelUnsupported, "'\(s)' is not supported (supported: \(allowed.joined(separator: ", ")))", file: file, tensor: key)
            }
            out.append(s)
        }
        return out
    }
}
