import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The one shape of every error dmsurgery shows a user, whichever module throws it.
///
/// Each module keeps its own error type (formats, engine, training, ...) so its rules stay next to its
/// code, and every one adopts this protocol so the executable turns any of them into one line and an exit
/// status in a single place, without translating one module's errors into another's at call sites.
/// Shaped after swift-nio's `FileSystemError`: a stable code, a human message, where it happened and
/// the error underneath. Most modules' errors are `ModuleError` (one struct, one tag per module); the
/// engine's and the schedulers' keep their structured subjects and adopt the same protocol.
public protocol ToolError: Error, CustomStringConvertible, CustomDebugStringConvertible, Sendable {
    /// The rule that was broken: a stable name that scripts and tests match on (formats/errors.md).
    var code: ErrorCode { get }
    /// What went wrong, for a person.
    var message: String { get }
    /// The file the problem is in (`-` for standard input), where one applies (`inFile`).
    var file: String? { get set }
    /// The tensor, parameter or config key the problem is in, where one applies.
    var tensor: String? { get }
    /// The error underneath, when this one reports another (a system call's, a parser's).
    var cause: (any Error)? { get }
}

extension ToolError {
    public var cause: (any Error)? { nil }

    /// The same error, attributed to `file` unless it already names one. One rule in every module: the
    /// code closest to the fault knows the file best (a config.json inside a model folder, one shard of
    /// an index), so a caller that wraps a call only fills in a file nobody named.
    public func inFile(_ file: String) -> Self {
        var copy = self
        if copy.file == nil { copy.file = file }
        return copy
    }

    /// The error as a tree, for debugging (`String(reflecting:)`, test failures): its one line, then
    /// each cause below it, indented.
    public var debugDescription: String {
        var lines = [oneLine]
        var next = cause
        while let underlying = next {
            let indent = String(repeating: "  ", count: lines.count)
            if let tool = underlying as? any ToolError {
                lines.append(indent + "caused by: " + tool.oneLine)
                next = tool.cause
            } else {
                lines.append(indent + "caused by: " + OneLine.escaped(String(reflecting: underlying)))
                next = nil
            }
        }
        return lines.joined(separator: "\n")
    }

    /// `FILE: RULE: message (tensor 'NAME')`: one line, stable enough to grep. Names, paths and library
    /// messages come from untrusted files, so the assembled line is escaped here, once
    /// (`OneLine.escaped`): a newline, an ANSI escape or a NUL in a tensor name cannot split the line or
    /// drive the terminal.
    public var oneLine: String {
        var line = ""
        if let file { line += "\(file): " }
        line += "\(code.rawValue): \(message)"
        if let tensor { line += " (tensor '\(tensor)')" }
        return OneLine.escaped(line)
    }
}

/// The one-line rendering of anything thrown, for the single place that prints errors.
public enum OneLine {
    /// `error` as one escaped line: a `ToolError` as its `oneLine`; a Foundation or system error (a
    /// failed mkdir, a failed write) as an `io-error` naming the file it was about when it says one;
    /// anything else as an `invalid-argument` with its description.
    public static func describe(_ error: any Error) -> String {
        if let tool = error as? any ToolError { return tool.oneLine }
        if let cocoa = error as? CocoaError {
            let underlying = (cocoa.userInfo[NSUnderlyingErrorKey] as? NSError).map { String(cString: strerror(Int32($0.code))) }
            let reason = underlying ?? Self.reason(cocoa.code) ?? cocoa.localizedDescription
            return TensorFormatError(.io, reason, file: cocoa.filePath ?? cocoa.url?.path, cause: cocoa).oneLine
        }
        return TensorFormatError(.invalidArgument, String(describing: error), cause: error).oneLine
    }

    /// Foundation's file error codes in strerror's words (its own text is "The operation could not be
    /// completed" when it kept no underlying errno).
    private static func reason(_ code: CocoaError.Code) -> String? {
        switch code {
        case .fileNoSuchFile, .fileReadNoSuchFile: return "no such file or directory"
        case .fileReadNoPermission, .fileWriteNoPermission: return "permission denied"
        case .fileWriteOutOfSpace: return "no space left on device"
        case .fileWriteFileExists: return "a file already exists there"
        case .fileWriteVolumeReadOnly: return "read-only file system"
        case .fileWriteUnknown: return "cannot create or write it (a parent is not a directory, or is not writable)"
        case .fileReadUnknown: return "cannot read it"
        default: return nil
        }
    }

    /// `text` with every control character (C0, DEL, C1) and the backslash written as an escape
    /// (`\n`, `\t`, `\r`, `\0`, `\\`, `\x1b`, `\u{85}`), so that it prints as one line of inert text.
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar) else { out.append(scalar); continue }
            let escape: String
            switch scalar {
            case "\n": escape = "\\n"
            case "\t": escape = "\\t"
            case "\r": escape = "\\r"
            case "\0": escape = "\\0"
            case "\\": escape = "\\\\"
            default:
                escape = scalar.value < 0x80 ? "\\x" + hex(scalar.value, digits: 2) : "\\u{" + hex(scalar.value, digits: 1) + "}"
            }
            out.append(contentsOf: escape.unicodeScalars)
        }
        return String(out)
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || scalar == "\\" || (0x7F...0x9F).contains(scalar.value)
            || scalar.value == 0x2028 || scalar.value == 0x2029
    }

    private static func hex(_ value: UInt32, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}

/// A rule name. Raw values are the names printed and documented in formats/; the constants live with
/// the module whose rule they are (`extension ErrorCode`), and formats/errors.md lists every one.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
}
