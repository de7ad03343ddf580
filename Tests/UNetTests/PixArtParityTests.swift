import Foundation
import TensorMath
import XCTest
@testable import UNet

/// The PixArt transformer against diffusers 0.42.1 (fixtures/engine/generate_pixart.py): the output and
/// every gradient (sample, caption embeddings, each parameter) within 1e-4 relative max error, on a
/// Sigma-shaped toy and on a width-pruned one with another depth, head count, patch size and grid.
final class PixArtParityTests: XCTestCase {
    struct Fixture {
        var model: PixArtTransformer
        var io: [String: Tensor]
        var grads: [String: Tensor]
    }

    static func load(_ name: String) throws -> Fixture {
        let config = try PixArtConfig(json: try FixtureReader.text("\(name)/config.json"))
        let model = try PixArtTransformer(config: config, weights: try FixtureReader.read("\(name)/diffusion_pytorch_model.safetensors"))
        return Fixture(model: model, io: try FixtureReader.read("\(name)/io.safetensors"),
                       grads: try FixtureReader.read("\(name)/grads.safetensors"))
    }

    func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let f = try Self.load(name)
        let (out, tape) = try f.model.forward(sample: f.io["sample"]!, timesteps: f.io["timestep"]!.data,
                                              encoderHiddenStates: f.io["encoder_hidden_states"]!,
                                              encoderAttentionMask: f.io["encoder_attention_mask"], recording: true)
        XCTAssertLessThanOrEqual(relativeMaxError(out, f.io["out.sample"]!), 1e-4, "\(name) output", file: file, line: line)
        let inferred = try f.model(sample: f.io["sample"]!, timesteps: f.io["timestep"]!.data,
                                   encoderHiddenStates: f.io["encoder_hidden_states"]!,
                                   encoderAttentionMask: f.io["encoder_attention_mask"])
        XCTAssertEqual(inferred, out, "\(name): the forward without a tape computes the same", file: file, line: line)
        let g = f.model.backward(tape!, outputGradient: f.io["cotangent"]!, parameterGradients: true)
        func compare(_ label: String, _ mine: Tensor?) {
            guard let mine, let ref = f.grads["grad.\(label)"] else {
                return XCTFail("\(name): gradient \(label) missing", file: file, line: line)
            }
            // to_k.bias's gradient is exactly zero (softmax ignores a constant added to a score row);
            // measure it against to_k.weight's gradient scale, as ParityTests does.
            var e = relativeMaxError(mine, ref)
            if label.hasSuffix("to_k.bias"), let scale = f.grads["grad." + label.replacingOccurrences(of: ".bias", with: ".weight")] {
                e = (mine - ref).maxAbs() / scale.maxAbs()
            }
            XCTAssertLessThanOrEqual(e, 1e-4, "\(name) grad.\(label)", file: file, line: line)
        }
        compare("sample", g.sample)
        compare("encoder_hidden_states", g.encoderHiddenStates)
        XCTAssertEqual(Set(g.parameters.keys), Set(f.model.parameters.keys), "\(name): a gradient per parameter", file: file, line: line)
        for name in f.model.parameters.keys.sorted() { compare(name, g.parameters[name]) }
        // A frozen model's backward gives the same input gradients without parameter gradients.
        let frozen = f.model.backward(tape!, outputGradient: f.io["cotangent"]!, parameterGradients: false)
        XCTAssertEqual(frozen.sample, g.sample, file: file, line: line)
        XCTAssertTrue(frozen.parameters.isEmpty, file: file, line: line)
    }

    func testSigmaShapedModelMatchesDiffusers() throws { try check("pixart_small") }

    func testPrunedModelOnAnotherGridMatchesDiffusers() throws {
        try check("pixart_pruned")
        let f = try Self.load("pixart_pruned")
        XCTAssertEqual(f.model.blocks.map(\.attn1.heads), [2, 4, 1], "heads read from to_q's rows")
        XCTAssertEqual(f.model.blocks.map(\.attn2.heads), [3, 4, 4])
        XCTAssertEqual(f.model.blocks.map(\.ffIn.outFeatures), [22, 64, 24], "FFN width read from ff.net.0.proj")
    }

    /// A caption token the mask drops has no effect on the output at all.
    func testMaskedCaptionTokensAreIgnored() throws {
        let f = try Self.load("pixart_small")
        var changed = f.io["encoder_hidden_states"]!
        let (t, d) = (changed.shape[1], changed.shape[2])
        for i in 0..<d { changed.data[(0 * t + 4) * d + i] += 3 }   // item 0, token 4: masked
        let args = (f.io["sample"]!, f.io["timestep"]!.data, f.io["encoder_attention_mask"])
        let a = try f.model(sample: args.0, timesteps: args.1, encoderHiddenStates: f.io["encoder_hidden_states"]!, encoderAttentionMask: args.2)
        let b = try f.model(sample: args.0, timesteps: args.1, encoderHiddenStates: changed, encoderAttentionMask: args.2)
        XCTAssertEqual(a, b)
        let unmasked = try f.model(sample: args.0, timesteps: args.1, encoderHiddenStates: changed, encoderAttentionMask: nil)
        XCTAssertNotEqual(unmasked, b, "without the mask the token counts")
    }

    func testRefusesConfigsItDoesNotImplement() throws {
        let base = try FixtureReader.text("pixart_small/config.json")
        func refusal(_ replace: String, _ with: String) -> UNetError? {
            do {
                _ = try PixArtConfig(json: base.replacingOccurrences(of: replace, with: with))
                return nil
            } catch { return error as? UNetError }
        }
        XCTAssertEqual(refusal("\"use_additional_conditions\": false", "\"use_additional_conditions\": true")?.subject, "use_additional_conditions")
        // Absent, diffusers turns it on at sample_size 128 (PixArt-Alpha 1024).
        XCTAssertNil(refusal("\"use_additional_conditions\": false", "\"use_additional_conditions\": null"))
        XCTAssertNil(refusal("\"sample_size\": 8", "\"sample_size\": 128"))
        let alpha = base.replacingOccurrences(of: "\"use_additional_conditions\": false", with: "\"use_additional_conditions\": null")
            .replacingOccurrences(of: "\"sample_size\": 8", with: "\"sample_size\": 128")
        XCTAssertThrowsError(try PixArtConfig(json: alpha)) { XCTAssertEqual(($0 as? UNetError)?.subject, "use_additional_conditions") }
        XCTAssertEqual(refusal("\"ada_norm_single\"", "\"ada_norm_zero\"")?.subject, "norm_type")
        XCTAssertEqual(refusal("\"gelu-approximate\"", "\"geglu\"")?.subject, "activation_fn")
        XCTAssertEqual(refusal("\"cross_attention_dim\": 16", "\"cross_attention_dim\": 12")?.kind, .invalidConfig)
        XCTAssertEqual(refusal("\"attention_head_dim\": 8", "\"attention_head_dim\": 7")?.subject, "attention_head_dim")
        XCTAssertEqual(refusal("\"num_layers\": 2", "\"num_layers\": 1e12")?.kind, .invalidConfig)
        XCTAssertFalse(PixArtConfig.describes(json: try FixtureReader.text("cond_small/config.json")))
        XCTAssertTrue(PixArtConfig.describes(json: base))
    }

    func testRefusesWeightsAndInputsThatDoNotFit() throws {
        let config = try PixArtConfig(json: try FixtureReader.text("pixart_small/config.json"))
        var weights = try FixtureReader.read("pixart_small/diffusion_pytorch_model.safetensors")
        weights["transformer_blocks.2.attn1.to_q.weight"] = Tensor(zeros: [16, 16])
        XCTAssertThrowsError(try PixArtTransformer(config: config, weights: weights)) {
            XCTAssertEqual(($0 as? UNetError)?.kind, .unexpectedParameter)
        }
        weights["transformer_blocks.2.attn1.to_q.weight"] = nil
        weights["proj_out.weight"] = Tensor(zeros: [30, 16])
        XCTAssertThrowsError(try PixArtTransformer(config: config, weights: weights)) {
            XCTAssertEqual(($0 as? UNetError)?.subject, "proj_out.weight")
        }
        let f = try Self.load("pixart_small")
        func inputError(sample: [Int] = [2, 4, 8, 8], t: Int = 2, context: [Int] = [2, 5, 12], mask: [Int]? = [2, 5]) -> String? {
            do {
                try f.model.checkInputs(sample: sample, timesteps: t, encoderHiddenStates: context, mask: mask, training: false)
                return nil
            } catch { return (error as? UNetError)?.subject }
        }
        XCTAssertNil(inputError())
        XCTAssertEqual(inputError(sample: [2, 3, 8, 8]), "sample")
        XCTAssertEqual(inputError(sample: [2, 4, 7, 8]), "sample")
        XCTAssertEqual(inputError(t: 1), "timestep")
        XCTAssertEqual(inputError(context: [2, 5, 16]), "encoder_hidden_states")
        XCTAssertEqual(inputError(mask: [2, 4]), "encoder_attention_mask")
        XCTAssertThrowsError(try f.model.checkInputs(sample: [2, 4, 1 << 20, 1 << 20], timesteps: 2, encoderHiddenStates: [2, 5, 12],
                                                     mask: nil, training: false), "activations beyond memory")
    }
}
