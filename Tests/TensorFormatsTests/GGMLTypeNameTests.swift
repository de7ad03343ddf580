import TensorFormats
import XCTest

final class GGMLTypeNameTests: XCTestCase {
    /// `caseName` spells out what reflection prints for each case (what `--quant` and the help list).
    func testNamesAreTheCaseNames() {
        for type in GGMLType.allCases {
            XCTAssertEqual(type.caseName, String(describing: type))
            XCTAssertEqual(type.name, String(describing: type).uppercased())
            XCTAssertEqual(GGMLType(userName: type.name), type)
        }
    }
}
