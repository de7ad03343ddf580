import Foundation
import TensorFormats

/// Prompts of a text file, one per line ("\r\n" accepted, empty lines skipped); the file must be UTF-8.
public func readPromptFile(_ path: String) throws -> [String] {
    // The size is checked before anything is read: a prompt file is untrusted input.
    let map = try MappedFile(path: path)
    guard map.size <= 64 << 20 else { throw TensorFormatError(.invalidArgument, "prompt file over 64 MB", file: path) }
    guard let text = String(validating: map.bytes, as: UTF8.self) else {
        throw TensorFormatError(.promptsNotUTF8, "prompt file is not valid UTF-8", file: path)
    }
    // Split on scalars: Swift's Character treats "\r\n" as one, which a Character split would miss.
    return text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
        .map { line in String(String.UnicodeScalarView(line.last == "\r" ? line.dropLast() : line[...])) }
        .filter { !$0.isEmpty }
}

extension ErrorCode {
    /// A prompt file that is not UTF-8 (formats/encode-prompt.md).
    public static let promptsNotUTF8 = ErrorCode(rawValue: "prompts-not-utf8")
}
