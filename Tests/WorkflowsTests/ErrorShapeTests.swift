import Diffusion
import Foundation
import Surgery
import TensorFormats
import Training
import UNet
import Workflows
import XCTest

/// Errors read the same from every module: one line `FILE: CODE: message (tensor 'NAME')` whichever
/// type throws it, one `inFile` rule (the file closest to the fault is kept), and the error underneath
/// kept whole for debugging.
final class ErrorShapeTests: XCTestCase {
    func testEveryModulesErrorPrintsTheSameLine() {
        let line = "m.safetensors: bad-shape: 3 values for 4 (tensor 'w')"
        XCTAssertEqual(TensorFormatError(.badShape, "3 values for 4", file: "m.safetensors", tensor: "w").oneLine, line)
        XCTAssertEqual(SurgeryError(.badShape, "3 values for 4", file: "m.safetensors", tensor: "w").oneLine, line)
        XCTAssertEqual(TrainingError(.badShape, "3 values for 4", file: "m.safetensors", tensor: "w").oneLine, line)
        XCTAssertEqual(PNGImage.Failure(.badShape, "3 values for 4", file: "m.safetensors", tensor: "w").oneLine, line)
        XCTAssertEqual(UNetError(.badShape, "w", "3 values for 4").inFile("m.safetensors").oneLine, line)
    }

    func testInFileKeepsTheFileClosestToTheFault() {
        let inner = "unet/config.json", outer = "unet"
        XCTAssertEqual(TensorFormatError(.invalidConfig, "x").inFile(inner).inFile(outer).file, inner)
        XCTAssertEqual(SurgeryError(.invalidConfig, "x").inFile(inner).inFile(outer).file, inner)
        XCTAssertEqual(UNetError(.invalidConfig, "sample_size", "x").inFile(inner).inFile(outer).file, inner)
        XCTAssertEqual(SchedulerConfigError(key: "beta_end", message: "x").inFile(inner).inFile(outer).file, inner)
        XCTAssertEqual(TrainingError(.runMismatch, "x").inFile(outer).file, outer, "a file nobody named is filled in")
    }

    /// The cause stays out of the user's line and is the second level of the debugging tree.
    func testTheCauseIsKeptForDebuggingOnly() {
        let parse = TensorFormatError(.headerInvalidJSON, "header is not valid JSON: expected ':'", tensor: nil)
        let error = SurgeryError(.invalidConfig, "config.json is not valid JSON", file: "model", cause: parse)
        XCTAssertEqual(error.oneLine, "model: invalid-config: config.json is not valid JSON")
        XCTAssertEqual(String(reflecting: error), """
            model: invalid-config: config.json is not valid JSON
              caused by: header-invalid-json: header is not valid JSON: expected ':'
            """)
        XCTAssertNotEqual(error, SurgeryError(.invalidConfig, "config.json is not valid JSON", file: "model"))
    }
}
