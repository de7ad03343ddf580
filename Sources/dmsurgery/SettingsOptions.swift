import ArgumentParser
import Foundation

/// An option group that is a settings value of the library: its properties are named as the fields of
/// `Settings`, so the parsed options become that value through Codable instead of a copy per field. An
/// option is then declared once as a settings field (its type, default and meaning) and once here as
/// its spelling and help, which only the CLI knows. Nested option groups are nested settings values.
protocol SettingsOptions: ParsableArguments, Encodable {
    associatedtype Settings: Codable
}

extension SettingsOptions {
    /// The parsed options as the settings value. The value must hold every option exactly (re-encoded,
    /// it equals the options but for absent optionals), so a misnamed property fails on the first run
    /// of the command instead of silently leaving a field at its default.
    var settings: Settings {
        get throws {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            let options = try encoder.encode(self)
            let settings = try JSONDecoder().decode(Settings.self, from: options)
            let given = try JSONSerialization.jsonObject(with: options), held = try JSONSerialization.jsonObject(with: try encoder.encode(settings))
            guard let difference = Self.difference(given, held, path: "") else { return settings }
            throw ValidationError("internal: the options of \(Self.self) and the fields of \(Settings.self) differ at \(difference)")
        }
    }

    /// The first key path where `given` (the options, nulls standing for absent optionals) and `held`
    /// differ; nil when they agree.
    private static func difference(_ given: Any, _ held: Any?, path: String) -> String? {
        if given is NSNull { return held == nil || held is NSNull ? nil : path }
        if let object = given as? [String: Any] {
            guard let other = held as? [String: Any] else { return path }
            for key in Set(object.keys).union(other.keys).sorted() {
                let name = path.isEmpty ? key : path + "." + key
                guard let value = object[key] else { return name }
                if let found = difference(value, other[key], path: name) { return found }
            }
            return nil
        }
        guard let held else { return path }
        return (given as? NSObject) == (held as? NSObject) ? nil : path
    }
}

// The property wrappers encode as the value they hold (they are read only after parsing), so an option
// group encodes as the settings value it spells.
extension Option: @retroactive Encodable where Value: Encodable {
    public func encode(to encoder: any Encoder) throws { try wrappedValue.encode(to: encoder) }
}

extension Flag: @retroactive Encodable where Value: Encodable {
    public func encode(to encoder: any Encoder) throws { try wrappedValue.encode(to: encoder) }
}

extension OptionGroup: @retroactive Encodable where Value: Encodable {
    public func encode(to encoder: any Encoder) throws { try wrappedValue.encode(to: encoder) }
}
