import XCTest
@testable import TensorFormats

/// The folder an output lands in, for the output-is-an-input check: `prune --depth base MODEL k/`
/// trapped in Foundation's `deletingLastPathComponent` before InputSet computed it by hand.
final class InputSetParentTests: XCTestCase {
    func testParentAndNameOfOneCharacterNamesTrailingSlashesAndTheRoot() throws {
        XCTAssertEqual(InputSet.parent(of: "k/"), "")
        XCTAssertEqual(InputSet.parent(of: "k"), "")
        XCTAssertEqual(InputSet.parent(of: "a/b//"), "a")
        XCTAssertEqual(InputSet.parent(of: "/a/b/"), "/a")
        XCTAssertEqual(InputSet.parent(of: "/a"), "/")
        XCTAssertEqual(InputSet.parent(of: "/"), "/")
        XCTAssertEqual(InputSet.name(of: "k/"), "k")
        XCTAssertEqual(InputSet.name(of: "/a/bc//"), "bc")
        XCTAssertEqual(InputSet.name(of: "/"), "/")
        // A one-character output in the working folder is checked, not trapped on.
        XCTAssertNoThrow(try InputSet.declare(inputs: [], outputs: [("k/", "OUT")]))
    }
}
