import Foundation
import TensorFormats
import XCTest
@testable import UNet

/// A config.json is untrusted input: every field and derived size is range-checked before it sizes
/// anything (issue 15: values that trapped `inspect`, `prune`, `forward` and `finetune --init-config`).
final class HostileConfigTests: XCTestCase {
    private func config(_ fields: String) throws -> UNetConfig {
        try UNetConfig(json: """
        {"_class_name": "UNet2DConditionModel", "cross_attention_dim": 16,
         "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
         "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], \(fields)}
        """)
    }

    func testRefusesOutOfRangeValuesNamingTheKey() {
        let widths = #""block_out_channels": [32, 64]"#
        let cases: [(String, String)] = [
            (#""block_out_channels": [9223372036854775808, 64]"#, "block_out_channels"),
            (#""block_out_channels": [-32, 64]"#, "block_out_channels"),
            (#""block_out_channels": [1000000000, 64]"#, "block_out_channels"),
            (widths + #", "sample_size": 100000000"#, "sample_size"),
            (widths + #", "sample_size": [1e300]"#, "sample_size"),
            (widths + #", "norm_num_groups": 0"#, "norm_num_groups"),
            (widths + #", "norm_num_groups": -4"#, "norm_num_groups"),
            (widths + #", "norm_num_groups": 3"#, "norm_num_groups"),
            (widths + #", "in_channels": -3"#, "in_channels"),
            (widths + #", "out_channels": 0"#, "out_channels"),
            (widths + #", "layers_per_block": [9223372036854775808, 1]"#, "layers_per_block"),
            (widths + #", "attention_head_dim": [0, 8]"#, "attention_head_dim"),
            (widths + #", "norm_eps": -1"#, "norm_eps"),
            (widths + #", "transformer_layers_per_block": 100000"#, "transformer_layers_per_block"),
        ]
        for (fields, key) in cases {
            XCTAssertThrowsError(try config(fields), fields) { error in
                XCTAssertEqual((error as? UNetError)?.kind, .invalidConfig, "\(fields): \(error)")
                XCTAssertEqual((error as? UNetError)?.subject, key, "\(fields): \(error)")
            }
        }
    }

    func testAcceptsTheWidestRealConfigs() throws {
        let c = try config(#""block_out_channels": [320, 640], "norm_num_groups": 32, "sample_size": 128"#)
        XCTAssertEqual(c.sampleSize, 128)
    }

    func testBuildingAModelWiderThanMemoryIsRefusedBeforeAllocating() throws {
        let c = try config(#""block_out_channels": [65536, 65536], "norm_num_groups": 32"#)
        XCTAssertThrowsError(try UNet2D(config: c, randomSeed: 0)) { error in
            XCTAssertEqual((error as? TensorFormatError)?.code, .tooLarge, "\(error)")
            XCTAssertTrue("\(error)".contains("block_out_channels"), "\(error)")
        }
    }

    /// Narrow blocks, but 65,536-wide time and SDXL add embeddings (~13 billion parameters).
    func testWideTimeAndAddedEmbeddingsAreRefusedBeforeAllocating() throws {
        let c = try config(#""block_out_channels": [32, 64], "norm_num_groups": 8, "time_embedding_dim": 65536, "addition_embed_type": "text_time", "addition_time_embed_dim": 8, "projection_class_embeddings_input_dim": 65536"#)
        XCTAssertThrowsError(try UNet2D(config: c, randomSeed: 0)) { error in
            XCTAssertEqual((error as? TensorFormatError)?.code, .tooLarge, "\(error)")
        }
    }

    func testInputsOfZeroSizeOrBeyondMemoryAreRefused() throws {
        let model = try UNet2D(config: try config(#""block_out_channels": [32, 64], "norm_num_groups": 8"#), randomSeed: 0)
        XCTAssertThrowsError(try model.checkInput(batch: 1, height: 0, width: 8, training: false, option: "--size"))
        XCTAssertThrowsError(try model.checkInput(batch: 0, height: 8, width: 8, training: false, option: "--batch"))
        XCTAssertThrowsError(try model.checkInput(batch: 1 << 40, height: 1 << 12, width: 1 << 12, training: true, option: "--batch")) { error in
            XCTAssertEqual((error as? TensorFormatError)?.code, .tooLarge, "\(error)")
        }
        XCTAssertNoThrow(try model.checkInput(batch: 2, height: 16, width: 16, training: true, option: "--batch"))
    }
}
