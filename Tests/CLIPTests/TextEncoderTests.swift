import CLIP
import Foundation
import TensorFormats
import TensorMath
import XCTest

/// Relative max error: max |a - b| / max |b|, the measure the parity bounds use.
func relativeMaxError(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "\(a.count) vs \(b.count)")
    var diff: Float = 0, scale: Float = 0
    for (x, y) in zip(a, b) {
        diff = max(diff, abs(x - y))
        scale = max(scale, abs(y))
    }
    return diff / max(scale, 1e-12)
}

func readTensors(_ path: String) throws -> [String: (shape: [Int], data: [Float])] {
    let checkpoint = try Checkpoint.open(path)
    var out: [String: (shape: [Int], data: [Float])] = [:]
    for entry in checkpoint.entries { out[entry.name] = (entry.shape, try checkpoint.floats(of: entry)) }
    return out
}

/// The text encoder against transformers' CLIPTextModel / CLIPTextModelWithProjection (random init,
/// tiny configs, fixtures/clip/generate.py).
final class TextEncoderTests: XCTestCase {
    func check(_ name: String, layers: Int, projection: Bool) throws {
        let model = try CLIPTextModel(path: TestSupport.fixture("text_encoder/\(name)"))
        XCTAssertEqual(model.projection != nil, projection)
        let expected = try readTensors(TestSupport.fixture("text_encoder/\(name)-expected.safetensors"))
        let idsTensor = expected["input_ids"]!
        let length = idsTensor.shape[1]
        let ids = (0..<idsTensor.shape[0]).map { r in (0..<length).map { Int32(idsTensor.data[r * length + $0]) } }
        let output = try model.forward(ids)
        XCTAssertEqual(output.hiddenStates.count, layers + 1)
        for (i, h) in output.hiddenStates.enumerated() {
            XCTAssertEqual(h.shape, expected["hidden_states.\(i)"]!.shape)
            XCTAssertLessThan(relativeMaxError(h.data, expected["hidden_states.\(i)"]!.data), 1e-4, "\(name) hidden_states[\(i)]")
        }
        XCTAssertLessThan(relativeMaxError(output.lastHiddenState.data, expected["last_hidden_state"]!.data), 1e-4, "\(name) last_hidden_state")
        XCTAssertLessThan(relativeMaxError(output.pooled.data, expected["pooled"]!.data), 1e-4, "\(name) pooled")
        if projection {
            XCTAssertLessThan(relativeMaxError(output.textEmbeds!.data, expected["text_embeds"]!.data), 1e-4, "\(name) text_embeds")
        }
    }

    func testQuickGELUModelMatchesTransformersHiddenStatesAndArgmaxPooling() throws {
        try check("quick-gelu", layers: 2, projection: false)
    }

    func testGELUProjectionModelMatchesTransformersWithEosIDPooling() throws {
        try check("gelu-projection", layers: 3, projection: true)
    }

    func testConfigFieldsAreRangeChecked() throws {
        let base = try String(contentsOfFile: TestSupport.fixture("text_encoder/quick-gelu/config.json"), encoding: .utf8)
        let cases: [(String, String, ErrorCode)] = [
            ("\"hidden_size\": 32", "\"hidden_size\": -32", .modelBadConfig),
            ("\"num_attention_heads\": 4", "\"num_attention_heads\": 5", .modelBadConfig),
            ("\"hidden_act\": \"quick_gelu\"", "\"hidden_act\": \"relu\"", .modelUnsupported),
            ("\"layer_norm_eps\": 1e-05", "\"layer_norm_eps\": \"small\"", .modelBadConfig),
            ("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1e9", .modelBadConfig),
        ]
        for (from, to, code) in cases {
            XCTAssertTrue(base.contains(from), from)
            XCTAssertThrowsError(try CLIPTextConfig(json: base.replacingOccurrences(of: from, with: to), file: "config.json"), to) {
                XCTAssertEqual(($0 as! CLIPError).code, code, to)
            }
        }
    }

    func testWeightsOfAnotherShapeOrExtraTensorsAreRefused() throws {
        let base = try String(contentsOfFile: TestSupport.fixture("text_encoder/quick-gelu/config.json"), encoding: .utf8)
        let checkpoint = try Checkpoint.open(TestSupport.fixture("text_encoder/quick-gelu"))
        let weights = try WeightTable(checkpoint: checkpoint)
        // Three layers configured, two present.
        let deeper = try CLIPTextConfig(json: base.replacingOccurrences(of: "\"num_hidden_layers\": 2", with: "\"num_hidden_layers\": 3"), file: "c")
        var table = weights
        XCTAssertThrowsError(try CLIPTextModel(config: deeper, weights: &table)) { XCTAssertEqual(($0 as! CLIPError).code, .modelMissingParameter) }
        // One layer configured: layer 1's tensors are left over.
        let shallower = try CLIPTextConfig(json: base.replacingOccurrences(of: "\"num_hidden_layers\": 2", with: "\"num_hidden_layers\": 1"), file: "c")
        table = weights
        XCTAssertThrowsError(try CLIPTextModel(config: shallower, weights: &table)) { XCTAssertEqual(($0 as! CLIPError).code, .modelUnexpectedParameter) }
        let wider = try CLIPTextConfig(json: base.replacingOccurrences(of: "\"intermediate_size\": 37", with: "\"intermediate_size\": 38"), file: "c")
        table = weights
        XCTAssertThrowsError(try CLIPTextModel(config: wider, weights: &table)) { XCTAssertEqual(($0 as! CLIPError).code, .modelBadShape) }
    }

    func testOutOfRangeTokenIDsAreRefused() throws {
        let model = try CLIPTextModel(path: TestSupport.fixture("text_encoder/quick-gelu"))
        XCTAssertThrowsError(try model.forward([[0, 1000]])) { XCTAssertEqual(($0 as! CLIPError).code, .modelBadInput) }
        XCTAssertThrowsError(try model.forward([[Int32]](repeating: [1], count: 1).map { _ in [Int32](repeating: 1, count: 78) })) {
            XCTAssertEqual(($0 as! CLIPError).code, .modelBadInput)
        }
    }
}
