import Foundation
import Surgery
import TensorFormats
import UNet
import XCTest

/// DepthPlan's KOALA variants on SDXL's own config (no weights needed: the plan reads the config and
/// the tensor names), so the cut is checked at SDXL's real depths without Python.
final class KOALAPlanTests: XCTestCase {
    private func sdxl(reverse: String = "null") -> String {
        #"{"_class_name": "UNet2DConditionModel", "sample_size": 128, "cross_attention_dim": 2048, "addition_embed_type": "text_time", "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2816, "attention_head_dim": [5, 10, 20], "block_out_channels": [320, 640, 1280], "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"], "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], "use_linear_projection": true, "layers_per_block": 2, "transformer_layers_per_block": [1, 2, 10], "reverse_transformer_layers_per_block": "#
            + reverse + "}"
    }

    /// One tensor per transformer block of the deepest stage (down block 2, mid, up block 0) and of
    /// down block 1, and the ResNets around them.
    private var names: [String] {
        var names = ["conv_in.weight", "add_embedding.linear_1.weight", "mid_block.resnets.0.conv1.weight"]
        for k in 0..<10 {
            for j in 0..<2 { names.append("down_blocks.2.attentions.\(j).transformer_blocks.\(k).attn1.to_q.weight") }
            for j in 0..<3 { names.append("up_blocks.0.attentions.\(j).transformer_blocks.\(k).attn1.to_q.weight") }
            names.append("mid_block.attentions.0.transformer_blocks.\(k).attn1.to_q.weight")
        }
        for k in 0..<2 { names.append("down_blocks.1.attentions.0.transformer_blocks.\(k).ff.net.2.weight") }
        for j in 0..<3 { names.append("up_blocks.0.resnets.\(j).conv1.weight") }
        return names
    }

    private func plan(_ variant: DepthVariant, reverse: String = "null") throws -> DepthPlan {
        let json = sdxl(reverse: reverse)
        return try DepthPlan(variant: variant, configJSON: json, config: try UNetConfig(json: json), names: names, file: "sdxl")
    }

    func testKOALA1BKeepsTheFirstSixBlocksOfTheDeepestTransformersAndTheMidBlock() throws {
        let koala = try plan(.koala1B)
        XCTAssertEqual(koala.config.transformerLayersPerBlock, [1, 2, 6])
        XCTAssertEqual(koala.config.layersPerBlock, [1, 1, 1])
        XCTAssertTrue(koala.config.hasMidBlock)
        XCTAssertEqual(koala.config.upTransformerLayers(0), 6)
        let copies = Dictionary(uniqueKeysWithValues: koala.copies.map { ($0.student, $0.teacher) })
        let deepest = copies.keys.filter { $0.contains(".transformer_blocks.") && !$0.hasPrefix("down_blocks.1") }
        // Down block 2 keeps attention 0, up block 0 attentions 0 and 1 (from 0 and 2), the mid block its one.
        XCTAssertEqual(deepest.count, 4 * 6)
        XCTAssertEqual(Set(deepest.compactMap { $0.split(separator: ".").dropLast(3).last.flatMap { Int($0) } }), Set(0..<6))
        XCTAssertEqual(copies["up_blocks.0.attentions.1.transformer_blocks.5.attn1.to_q.weight"],
                       "up_blocks.0.attentions.2.transformer_blocks.5.attn1.to_q.weight")
        XCTAssertNil(copies["mid_block.attentions.0.transformer_blocks.6.attn1.to_q.weight"])
        // The 2-block transformers of the middle stage and the added embedding are left alone.
        XCTAssertNotNil(copies["down_blocks.1.attentions.0.transformer_blocks.1.ff.net.2.weight"])
        XCTAssertEqual(copies["add_embedding.linear_1.weight"], "add_embedding.linear_1.weight")
        XCTAssertEqual(Set(koala.copies.map(\.teacher)).union(koala.dropped), Set(names))
    }

    func testKOALA700MKeepsFiveBlocksAndDropsTheMidBlock() throws {
        let koala = try plan(.koala700M)
        XCTAssertEqual(koala.config.transformerLayersPerBlock, [1, 2, 5])
        XCTAssertFalse(koala.config.hasMidBlock)
        XCTAssertFalse(koala.copies.contains { $0.student.hasPrefix("mid_block") })
        XCTAssertFalse(koala.copies.contains { $0.student.contains(".transformer_blocks.5.") && !$0.student.hasPrefix("down_blocks.1") })
        XCTAssertTrue(koala.copies.contains { $0.student.hasPrefix("down_blocks.2.attentions.0.transformer_blocks.4.") })
    }

    func testAnExplicitUpDepthIsCutToTheKeptDepthToo() throws {
        let koala = try plan(.koala1B, reverse: "[10, 2, 1]")
        XCTAssertEqual(koala.config.reverseTransformerLayersPerBlock, [6, 2, 1])
        let written = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(koala.configJSON.utf8)) as? [String: Any])
        XCTAssertEqual(written["reverse_transformer_layers_per_block"] as? [Int], [6, 2, 1])
        XCTAssertEqual(written["transformer_layers_per_block"] as? [Int], [1, 2, 6])
    }

    func testATeacherWithShallowDeepestTransformersIsRefused() throws {
        let json = sdxl().replacingOccurrences(of: "[1, 2, 10]", with: "[1, 2, 5]")
        XCTAssertThrowsError(try DepthPlan(variant: .koala700M, configJSON: json, config: try UNetConfig(json: json), names: [], file: "m")) { error in
            XCTAssertEqual((error as? SurgeryError)?.code, .depthUnsupported)
        }
    }
}
