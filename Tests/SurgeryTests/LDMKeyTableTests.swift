@testable import Surgery
import XCTest

/// The key table against name pairs of the real SD-1.5 layout (4 blocks, 2 layers, no attention in the
/// last down and first up block), as diffusers' `convert_ldm_unet_checkpoint` / `convert_ldm_vae_checkpoint`
/// and its scripts/convert_diffusers_to_original_stable_diffusion.py pair them; both directions.
final class LDMKeyTableTests: XCTestCase {
    private let sd15 = LDMLayout.unet(.init(blocks: 4, layersPerBlock: 2, downAttention: [true, true, true, false],
                                             upAttention: [false, true, true, true], midAttention: true, addition: false))
    private let vae = LDMLayout.vae(.init(blocks: 4, layersPerBlock: 2))

    private func assertPairs(_ rules: [LDMBlockRule], _ pairs: [(String, String)], file: StaticString = #filePath, line: UInt = #line) {
        for (ldm, diffusers) in pairs {
            XCTAssertEqual(rules.diffusersName(ofLDM: ldm)?.name, diffusers, ldm, file: file, line: line)
            XCTAssertEqual(rules.ldmName(ofDiffusers: diffusers)?.name, ldm, diffusers, file: file, line: line)
        }
    }

    func testUNetNamesMapBothWaysAsInDiffusers() {
        assertPairs(sd15, [
            ("time_embed.0.weight", "time_embedding.linear_1.weight"),
            ("input_blocks.0.0.bias", "conv_in.bias"),
            ("input_blocks.1.0.in_layers.0.weight", "down_blocks.0.resnets.0.norm1.weight"),
            ("input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight", "down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k.weight"),
            ("input_blocks.3.0.op.weight", "down_blocks.0.downsamplers.0.conv.weight"),
            ("input_blocks.4.0.skip_connection.weight", "down_blocks.1.resnets.0.conv_shortcut.weight"),
            ("input_blocks.11.0.out_layers.3.bias", "down_blocks.3.resnets.1.conv2.bias"),
            ("middle_block.1.proj_in.weight", "mid_block.attentions.0.proj_in.weight"),
            ("middle_block.2.emb_layers.1.weight", "mid_block.resnets.1.time_emb_proj.weight"),
            ("output_blocks.2.1.conv.weight", "up_blocks.0.upsamplers.0.conv.weight"),
            ("output_blocks.5.2.conv.bias", "up_blocks.1.upsamplers.0.conv.bias"),
            ("output_blocks.5.1.proj_out.weight", "up_blocks.1.attentions.2.proj_out.weight"),
            ("output_blocks.11.0.skip_connection.bias", "up_blocks.3.resnets.2.conv_shortcut.bias"),
            ("out.2.weight", "conv_out.weight"),
        ])
        XCTAssertNil(sd15.diffusersName(ofLDM: "input_blocks.12.0.in_layers.0.weight"))
    }

    func testVAENamesMapBothWaysWithTheDecoderReversed() {
        assertPairs(vae, [
            ("encoder.down.0.block.1.conv2.weight", "encoder.down_blocks.0.resnets.1.conv2.weight"),
            ("encoder.down.2.downsample.conv.weight", "encoder.down_blocks.2.downsamplers.0.conv.weight"),
            ("encoder.down.1.block.0.nin_shortcut.bias", "encoder.down_blocks.1.resnets.0.conv_shortcut.bias"),
            ("encoder.mid.attn_1.norm.weight", "encoder.mid_block.attentions.0.group_norm.weight"),
            ("decoder.mid.attn_1.proj_out.bias", "decoder.mid_block.attentions.0.to_out.0.bias"),
            ("decoder.up.3.block.2.conv1.weight", "decoder.up_blocks.0.resnets.2.conv1.weight"),
            ("decoder.up.3.upsample.conv.weight", "decoder.up_blocks.0.upsamplers.0.conv.weight"),
            ("decoder.up.0.block.0.nin_shortcut.weight", "decoder.up_blocks.3.resnets.0.conv_shortcut.weight"),
            ("decoder.norm_out.weight", "decoder.conv_norm_out.weight"),
        ])
        XCTAssertEqual(vae.diffusersName(ofLDM: "encoder.mid.attn_1.q.weight")?.transform, .squeezeConv)
        XCTAssertNil(vae.diffusersName(ofLDM: "decoder.up.0.upsample.conv.weight"))
    }

    func testOpenCLIPSplitsTheFusedProjectionAndTransposesTheTextProjection() {
        let rules = LDMLayout.openCLIP(prefix: "", base: "text_model.", layers: 2, projection: true)
        XCTAssertEqual(rules.diffusersName(ofLDM: "transformer.resblocks.1.attn.in_proj_weight"),
                       LDMMappedName(name: "text_model.encoder.layers.1.self_attn.{}_proj.weight", transform: .fusedQKV))
        XCTAssertEqual(rules.ldmName(ofDiffusers: "text_model.encoder.layers.1.self_attn.v_proj.bias"),
                       LDMMappedName(name: "transformer.resblocks.1.attn.in_proj_bias", transform: .fusedQKV, part: 2))
        XCTAssertEqual(rules.diffusersName(ofLDM: "text_projection"), LDMMappedName(name: "text_projection.weight", transform: .transpose))
        XCTAssertEqual(rules.ldmName(ofDiffusers: "text_projection.weight"), LDMMappedName(name: "text_projection", transform: .transpose))
        XCTAssertEqual(rules.diffusersName(ofLDM: "positional_embedding")?.name, "text_model.embeddings.position_embedding.weight")
        XCTAssertEqual(rules.ldmName(ofDiffusers: "text_model.encoder.layers.0.mlp.fc2.bias")?.name, "transformer.resblocks.0.mlp.c_proj.bias")
    }
}
