import Foundation
import TensorMath
import XCTest
@testable import UNet

final class ConfigTests: XCTestCase {
    private func config(_ extra: String) throws -> UNetConfig {
        try UNetConfig(json: """
        {"_class_name": "UNet2DConditionModel", "block_out_channels": [32, 64], "cross_attention_dim": 16,
         "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
         "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]\(extra)}
        """)
    }

    private func assertRefused(_ extra: String, key: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try config(extra), file: file, line: line) { error in
            XCTAssertEqual((error as? UNetError)?.subject, key, "\(error)", file: file, line: line)
        }
    }

    /// Every down block but the last halves a side: 1, 2 or 3 blocks give 1, 2 or 4, the multiple the
    /// input check asks of a sample's sides.
    func testDownsampleFactorIsTheDownBlocksHalvings() throws {
        var config = try config("")
        XCTAssertEqual(config.downsampleFactor, 2)
        config.blockOutChannels = [32, 64, 64]
        XCTAssertEqual(config.downsampleFactor, 4)
        config.blockOutChannels = [32]
        XCTAssertEqual(config.downsampleFactor, 1)
        let model = try ParityTests.load("ddpm_small").model
        XCTAssertEqual(model.config.downsampleFactor, 2)
        XCTAssertNoThrow(try model.checkInput(batch: 1, height: 6, width: 4, training: false, option: "--size"))
        XCTAssertThrowsError(try model.checkInput(batch: 1, height: 6, width: 5, training: false, option: "--size")) { error in
            XCTAssertTrue("\(error)".contains("multiples of 2"), "\(error)")
        }
    }

    func testReadsHeadCountsFromIntAndList() throws {
        XCTAssertEqual(try config(#", "attention_head_dim": 8"#).attentionHeads, [8, 8])
        XCTAssertEqual(try config(#", "attention_head_dim": [2, 4]"#).attentionHeads, [2, 4])
        XCTAssertEqual(try config(#", "attention_head_dim": 8, "num_attention_heads": [4, 2]"#).attentionHeads, [4, 2])
    }

    func testRefusesUnsupportedValuesNamingTheKey() {
        assertRefused(#", "act_fn": "gelu""#, key: "act_fn")
        assertRefused(#", "class_embed_type": "timestep""#, key: "class_embed_type")
        assertRefused(#", "time_embedding_type": "fourier""#, key: "time_embedding_type")
        assertRefused(#", "resnet_time_scale_shift": "scale_shift""#, key: "resnet_time_scale_shift")
        assertRefused(#", "only_cross_attention": true"#, key: "only_cross_attention")
        assertRefused(#", "mid_block_type": "UNetMidBlock2DSimpleCrossAttn""#, key: "mid_block_type")
        assertRefused(#", "transformer_layers_per_block": [[1, 2], [1, 2]]"#, key: "transformer_layers_per_block")
        assertRefused(#", "addition_embed_type": "text""#, key: "addition_embed_type")
        // text_time without its widths, and its widths without text_time.
        assertRefused(#", "addition_embed_type": "text_time""#, key: "addition_embed_type")
        assertRefused(#", "addition_time_embed_dim": 8"#, key: "addition_time_embed_dim")
        assertRefused(#", "reverse_transformer_layers_per_block": [[1], [2]]"#, key: "reverse_transformer_layers_per_block")
        assertRefused(#", "attention_head_dim": [2, 4, 8]"#, key: "attention_head_dim")
        assertRefused(#", "dropout": 0.1"#, key: "dropout")
    }

    /// SDXL's keys: text_time with its two widths, and up-block depths that need not mirror the down ones.
    func testReadsTextTimeAndReverseTransformerDepths() throws {
        let c = try config(#", "addition_embed_type": "text_time", "addition_time_embed_dim": 8, "projection_class_embeddings_input_dim": 68, "transformer_layers_per_block": [1, 3], "reverse_transformer_layers_per_block": [2, 5]"#)
        XCTAssertEqual(c.textTime, TextTimeConfig(timeEmbedDim: 8, inputDim: 68))
        XCTAssertEqual([c.upTransformerLayers(0), c.upTransformerLayers(1)], [2, 5])
        let mirrored = try config(#", "transformer_layers_per_block": [1, 3]"#)
        XCTAssertNil(mirrored.textTime)
        XCTAssertEqual([mirrored.upTransformerLayers(0), mirrored.upTransformerLayers(1)], [3, 1])
    }

    /// stabilityai/stable-diffusion-xl-base-1.0's unet/config.json as published (diffusers 0.19), nulls included.
    func testReadsTheSDXLBaseConfig() throws {
        let c = try UNetConfig(json: """
            {"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.19.0.dev0", "act_fn": "silu",
             "addition_embed_type": "text_time", "addition_embed_type_num_heads": 64, "addition_time_embed_dim": 256,
             "attention_head_dim": [5, 10, 20], "block_out_channels": [320, 640, 1280], "center_input_sample": false,
             "class_embed_type": null, "class_embeddings_concat": false, "conv_in_kernel": 3, "conv_out_kernel": 3,
             "cross_attention_dim": 2048, "cross_attention_norm": null,
             "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
             "downsample_padding": 1, "dual_cross_attention": false, "encoder_hid_dim": null, "encoder_hid_dim_type": null,
             "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
             "mid_block_only_cross_attention": null, "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2DCrossAttn",
             "norm_eps": 1e-05, "norm_num_groups": 32, "num_attention_heads": null, "num_class_embeds": null,
             "only_cross_attention": false, "out_channels": 4, "projection_class_embeddings_input_dim": 2816,
             "resnet_out_scale_factor": 1.0, "resnet_skip_time_act": false, "resnet_time_scale_shift": "default",
             "sample_size": 128, "time_cond_proj_dim": null, "time_embedding_act_fn": null, "time_embedding_dim": null,
             "time_embedding_type": "positional", "timestep_post_act": null, "transformer_layers_per_block": [1, 2, 10],
             "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], "upcast_attention": null,
             "use_linear_projection": true}
            """)
        XCTAssertEqual(c.textTime, TextTimeConfig(timeEmbedDim: 256, inputDim: 2816))
        XCTAssertEqual(c.attentionHeads, [5, 10, 20])
        XCTAssertEqual((0..<3).map(c.upTransformerLayers), [10, 2, 1])
        XCTAssertTrue(c.useLinearProjection)
        XCTAssertFalse(c.upcastAttention)
    }

    func testRefusesUnknownBlockTypes() {
        XCTAssertThrowsError(try UNetConfig(json: """
            {"_class_name": "UNet2DModel", "block_out_channels": [32], "down_block_types": ["SkipDownBlock2D"],
             "up_block_types": ["UpBlock2D"]}
            """)) { error in XCTAssertEqual((error as? UNetError)?.subject, "down_block_types") }
    }

    func testMissingAndUnexpectedParametersAreNamed() throws {
        let config = try UNetConfig(json: try FixtureReader.text("ddpm_small/config.json"))
        var weights = try FixtureReader.read("ddpm_small/diffusion_pytorch_model.safetensors")
        weights["extra.weight"] = Tensor(zeros: [1])
        XCTAssertThrowsError(try UNet2D(config: config, weights: weights)) { error in
            XCTAssertEqual(error as? UNetError, UNetError(.unexpectedParameter, "extra.weight",
                                                          "not used by this UNet2DModel config (1 unused in all)"))
        }
        weights["extra.weight"] = nil
        weights["conv_out.bias"] = nil
        XCTAssertThrowsError(try UNet2D(config: config, weights: weights)) { error in
            XCTAssertEqual((error as? UNetError)?.subject, "conv_out.bias")
        }
    }

    func testPrunedConvWidthMustBeWholeGroups() throws {
        let config = try UNetConfig(json: try FixtureReader.text("ddpm_small/config.json"))
        var weights = try FixtureReader.read("ddpm_small/diffusion_pytorch_model.safetensors")
        // conv1 of down_blocks.0.resnets.0 narrowed to 3 channels: not whole groups of 2.
        let p = "down_blocks.0.resnets.0"
        func narrow(_ name: String, rows: Int) {
            let t = weights[name]!
            let per = t.count / t.shape[0]
            weights[name] = Tensor(shape: [rows] + Array(t.shape.dropFirst()), data: Array(t.data.prefix(rows * per)))
        }
        narrow("\(p).conv1.weight", rows: 3)
        narrow("\(p).conv1.bias", rows: 3)
        narrow("\(p).time_emb_proj.weight", rows: 3)
        narrow("\(p).time_emb_proj.bias", rows: 3)
        narrow("\(p).norm2.weight", rows: 3)
        narrow("\(p).norm2.bias", rows: 3)
        let c2 = weights["\(p).conv2.weight"]!
        weights["\(p).conv2.weight"] = Tensor(zeros: [c2.shape[0], 3, 3, 3])
        XCTAssertThrowsError(try UNet2D(config: config, weights: weights)) { error in
            XCTAssertEqual((error as? UNetError)?.subject, "\(p).norm2.weight", "\(error)")
        }
    }
}
