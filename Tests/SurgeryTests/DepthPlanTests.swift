import Surgery
import TensorFormats
import UNet
import XCTest

/// DepthPlan on Stable Diffusion 1.5's config (diffusers' defaults: every key left out) against the
/// copy rules of BK-SDM's `copy_weight_from_teacher` and its released configs.
final class DepthPlanTests: XCTestCase {
    private let defaults = #"{"_class_name": "UNet2DConditionModel"}"#

    /// Every ResNet, attention and resampler prefix of an SD-1.5 UNet, one tensor each.
    private var names: [String] {
        var names = ["conv_in.weight", "time_embedding.linear_1.weight", "conv_out.weight",
                     "mid_block.resnets.0.conv1.weight", "mid_block.attentions.0.proj_in.weight", "mid_block.resnets.1.conv1.weight"]
        for i in 0..<4 {
            for j in 0..<2 { names.append("down_blocks.\(i).resnets.\(j).conv1.weight") }
            if i < 3 {
                for j in 0..<2 { names.append("down_blocks.\(i).attentions.\(j).proj_in.weight") }
                names.append("down_blocks.\(i).downsamplers.0.conv.weight")
            }
            for j in 0..<3 { names.append("up_blocks.\(i).resnets.\(j).conv1.weight") }
            if i > 0 { for j in 0..<3 { names.append("up_blocks.\(i).attentions.\(j).proj_in.weight") } }
            if i < 3 { names.append("up_blocks.\(i).upsamplers.0.conv.weight") }
        }
        return names
    }

    private func plan(_ variant: DepthVariant) throws -> DepthPlan {
        try DepthPlan(variant: variant, configJSON: defaults, config: try UNetConfig(json: defaults), names: names, file: "sd15")
    }

    func testBaseKeepsTheFirstDownLayerAndTheFirstAndLastUpLayersAsBKSDM() throws {
        let copies = Dictionary(uniqueKeysWithValues: try plan(.base).copies.map { ($0.student, $0.teacher) })
        XCTAssertEqual(copies["down_blocks.1.resnets.0.conv1.weight"], "down_blocks.1.resnets.0.conv1.weight")
        XCTAssertNil(copies["down_blocks.1.resnets.1.conv1.weight"])
        XCTAssertEqual(copies["up_blocks.0.resnets.1.conv1.weight"], "up_blocks.0.resnets.2.conv1.weight")
        XCTAssertEqual(copies["up_blocks.2.attentions.1.proj_in.weight"], "up_blocks.2.attentions.2.proj_in.weight")
        XCTAssertNil(copies["up_blocks.2.attentions.2.proj_in.weight"])
        XCTAssertEqual(copies["mid_block.resnets.1.conv1.weight"], "mid_block.resnets.1.conv1.weight")
        XCTAssertEqual(try plan(.base).config.layersPerBlock, [1, 1, 1, 1])
    }

    func testTinyShiftsUpBlocksDropsTheInnermostStageAndWritesBKSDMTinysConfig() throws {
        let tiny = try plan(.tiny)
        let copies = Dictionary(uniqueKeysWithValues: tiny.copies.map { ($0.student, $0.teacher) })
        XCTAssertEqual(copies["up_blocks.0.resnets.0.conv1.weight"], "up_blocks.1.resnets.0.conv1.weight")
        XCTAssertEqual(copies["up_blocks.0.attentions.1.proj_in.weight"], "up_blocks.1.attentions.2.proj_in.weight")
        XCTAssertEqual(copies["up_blocks.2.resnets.1.conv1.weight"], "up_blocks.3.resnets.2.conv1.weight")
        XCTAssertEqual(copies["up_blocks.1.upsamplers.0.conv.weight"], "up_blocks.2.upsamplers.0.conv.weight")
        XCTAssertNil(copies["up_blocks.2.upsamplers.0.conv.weight"])
        XCTAssertNil(copies["down_blocks.2.downsamplers.0.conv.weight"], "the new last down block has no downsampler")
        XCTAssertFalse(copies.keys.contains { $0.hasPrefix("down_blocks.3") || $0.hasPrefix("mid_block") || $0.hasPrefix("up_blocks.3") })
        XCTAssertEqual(tiny.config.blockOutChannels, [320, 640, 1280])
        XCTAssertEqual(tiny.config.downBlockTypes, [.crossAttnDown, .crossAttnDown, .crossAttnDown])
        XCTAssertEqual(tiny.config.upBlockTypes, [.crossAttnUp, .crossAttnUp, .crossAttnUp])
        XCTAssertEqual(tiny.config.layersPerBlock, [1, 1, 1])
        XCTAssertFalse(tiny.config.hasMidBlock)
        XCTAssertEqual(Set(tiny.copies.map(\.teacher)).union(tiny.dropped), Set(names))
    }

    func testTinyIsRefusedWhenTheInnermostWidthsDiffer() throws {
        let json = #"{"_class_name": "UNet2DConditionModel", "block_out_channels": [32, 64], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "attention_head_dim": 4}"#
        XCTAssertThrowsError(try DepthPlan(variant: .tiny, configJSON: json, config: try UNetConfig(json: json), names: [], file: "m")) { error in
            XCTAssertEqual((error as? SurgeryError)?.code, .depthUnsupported)
        }
    }
}
