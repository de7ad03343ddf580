#if canImport(Glibc)
import Glibc
#endif
import TensorFormats

/// Which tensors an operation keeps, and what it calls them.
///
/// Globs use fnmatch(3) without FNM_PATHNAME, so `*` crosses dots: `--only 'down_blocks.*'`.
public struct TensorSelection: Sendable {
    public var only: [String]
    public var exclude: [String]
    public var renames: [RenameRule]

    public init(only: [String] = [], exclude: [String] = [], renames: [RenameRule] = []) {
        self.only = only
        self.exclude = exclude
        self.renames = renames
    }

    public func includes(_ name: String) -> Bool {
        if !only.isEmpty && !only.contains(where: { globMatches($0, name) }) { return false }
        return !exclude.contains(where: { globMatches($0, name) })
    }

    /// Applies every rename rule in order.
    public func rename(_ name: String) -> String {
        renames.reduce(name) { $1.apply(to: $0) }
    }
}

/// `FROM=TO`: a name equal to FROM, or starting with FROM followed by a dot, gets TO instead of that
/// prefix. An empty TO strips the prefix (`--rename unet=` turns `unet.conv_in.weight` into `conv_in.weight`).
public struct RenameRule: Sendable, Equatable {
    public var from: String
    public var to: String

    public init?(argument: String) {
        guard let equals = argument.firstIndex(of: "="), equals != argument.startIndex else { return nil }
        from = String(argument[..<equals])
        to = String(argument[argument.index(after: equals)...])
    }

    /// Names match byte for byte (not by Unicode equivalence), as tensor names are compared everywhere.
    public func apply(to name: String) -> String {
        if name.utf8.elementsEqual(from.utf8) { return to }
        let prefix = from.hasSuffix(".") ? from : from + "."
        guard name.utf8.starts(with: prefix.utf8) else { return name }
        let rest = String(decoding: name.utf8.dropFirst(prefix.utf8.count), as: UTF8.self)
        if to.isEmpty { return rest }
        return (to.hasSuffix(".") ? to : to + ".") + rest
    }
}

public func globMatches(_ pattern: String, _ name: String) -> Bool {
    fnmatch(pattern, name, 0) == 0
}
