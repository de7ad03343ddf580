import Foundation
import TensorFormats
import Workflows
import XCTest

/// The error codes in three places agree: declared in Sources/, listed in `ErrorCode.registry`, and
/// documented in formats/errors.md (same order as the registry).
final class ErrorCodeRegistryTests: XCTestCase {
    private static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    private func matches(_ pattern: String, in text: String) throws -> [String] {
        let regex = try NSRegularExpression(pattern: pattern, options: [.anchorsMatchLines])
        return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).map {
            String(text[Range($0.range(at: 1), in: text)!])
        }
    }

    func testTheRegistryHasNoDuplicates() {
        XCTAssertEqual(Set(ErrorCode.registry).count, ErrorCode.registry.count)
    }

    func testFormatsErrorsListsTheRegistryInOrder() throws {
        let page = try String(contentsOf: Self.repository.appendingPathComponent("formats/errors.md"), encoding: .utf8)
        XCTAssertEqual(try matches(#"^\| `([a-z0-9-]+)` \|"#, in: page), ErrorCode.registry.map(\.rawValue))
    }

    func testEveryDeclaredCodeIsRegistered() throws {
        var declared: Set<String> = []
        let sources = Self.repository.appendingPathComponent("Sources")
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!
        for case let url as URL in files where url.pathExtension == "swift" {
            let text = try String(contentsOf: url, encoding: .utf8)
            declared.formUnion(try matches(#"static let \w+ = (?:ErrorCode|Self)\(rawValue: "([a-z0-9-]+)"\)"#, in: text))
            XCTAssertTrue(try matches(#"(ErrorCode|Code|\.init)\(rawValue: "[a-z0-9-]+"\), "#, in: text).isEmpty,
                          "\(url.lastPathComponent) makes a code inline; declare it in an extension ErrorCode")
        }
        XCTAssertEqual(declared, Set(ErrorCode.registry.map(\.rawValue)))
    }
}
