/// The one shape of every error dmsurgery shows a user, whichever module throws it.
///
/// Each module keeps its own error type (formats, engine, training, ...) so its rules stay next to its
/// code, and every one adopts this protocol so the executable turns any of them into one line and an exit
/// status in a single place, without translating one module's errors into another's at call sites.
/// Shaped after swift-nio's `FileSystemError`: a stable code, a human message, and where it happened.
public protocol ToolError: Error, CustomStringConvertible, Sendable {
    /// The rule that was broken: a stable name that scripts and tests match on (formats/errors.md).
    var code: ErrorCode { get }
    /// What went wrong, for a person.
    var message: String { get }
    /// The file the problem is in (`-` for standard input), where one applies.
    var file: String? { get }
    /// The tensor, parameter or config key the problem is in, where one applies.
    var tensor: String? { get }
}

extension ToolError {
    /// `FILE: RULE: message (tensor 'NAME')`: one line, stable enough to grep.
    public var oneLine: String {
        var line = ""
        if let file { line += "\(file): " }
        line += "\(code.rawValue): \(message)"
        if let tensor { line += " (tensor '\(tensor)')" }
        return line
    }
}

/// A rule name. Raw values are the names printed and documented in formats/; the constants live with
/// the module whose rule they are (`extension ErrorCode`), and formats/errors.md lists every one.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
}
