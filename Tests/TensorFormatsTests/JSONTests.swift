import TensorFormats
import XCTest

final class JSONTests: XCTestCase {
    func testRejectsDuplicateKeysWithTheirParent() {
        XCTAssertThrowsError(try JSONParser.parse(#"{"a":{"x":1,"x":2}}"#)) { error in
            XCTAssertEqual((error as? JSONParseError)?.kind, .duplicateKey("x", parent: "a"))
        }
    }

    func testKeepsMemberOrderAndNumbersAsWritten() throws {
        let value = try JSONParser.parse(#" {"z": 18446744073709551615, "a": -0.5e3} "#)
        guard case .object(let members) = value else { return XCTFail("not an object") }
        XCTAssertEqual(members.map(\.key), ["z", "a"])
        XCTAssertEqual(value["z"]?.unsignedValue, UInt64.max)
        XCTAssertNil(value["a"]?.unsignedValue)
    }

    func testDecodesEscapesAndSurrogatePairs() throws {
        XCTAssertEqual(try JSONParser.parse(#""a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#), .string("a\"\\/\u{08}\u{0C}\n\r\té😀"))
    }

    func testRejectsWhatSerdeRejects() {
        for text in [#""\ud800""#, "\"a\u{01}\"", "[1,]", "{\"a\":1,}", "01", "1.", "-", "tru", "{} {}", "[" + String(repeating: "[", count: 200)] {
            XCTAssertThrowsError(try JSONParser.parse(text), text)
        }
    }

    func testCompactWriterEscapesLikeSerde() {
        XCTAssertEqual(JSONWriter.compact(.object([JSONMember("k\u{01}", .string("é\"\n/\u{7F}"))])), "{\"k\\u0001\":\"é\\\"\\n/\u{7F}\"}")
    }

    func testPythonWriterMatchesJsonDumpsIndent2() {
        let value: JSONValue = .object([JSONMember("a", .array([.int(1), .string("é")])), JSONMember("b", .object([]))])
        XCTAssertEqual(JSONWriter.python(value), "{\n  \"a\": [\n    1,\n    \"\\u00e9\"\n  ],\n  \"b\": {}\n}")
    }
}
