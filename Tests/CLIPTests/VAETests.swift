import CLIP
import Diffusion
import Foundation
import TensorFormats
import TensorMath
import VAE
import XCTest

/// AutoencoderKL against diffusers 0.42.1 (random init, tiny configs, fixtures/clip/generate.py).
final class VAETests: XCTestCase {
    func tensor(_ t: (shape: [Int], data: [Float])) -> Tensor { Tensor(shape: t.shape, data: t.data) }

    func check(_ name: String) throws {
        let vae = try AutoencoderKL(path: TestSupport.fixture("vae/\(name)"))
        let expected = try readTensors(TestSupport.fixture("vae/\(name)-expected.safetensors"))
        let (mean, std) = try vae.encode(tensor(expected["images"]!))
        XCTAssertEqual(mean.shape, expected["mean"]!.shape)
        XCTAssertLessThan(relativeMaxError(mean.data, expected["mean"]!.data), 1e-4, "\(name) mean")
        XCTAssertLessThan(relativeMaxError(std.data, expected["std"]!.data), 1e-4, "\(name) std")
        let latents = try vae.latents(of: tensor(expected["images"]!))
        XCTAssertLessThan(relativeMaxError(latents.data, expected["latents"]!.data), 1e-4, "\(name) latents")
        let decoded = try vae.images(fromLatents: tensor(expected["decode_latents"]!))
        XCTAssertEqual(decoded.shape, expected["decoded"]!.shape)
        XCTAssertLessThan(relativeMaxError(decoded.data, expected["decoded"]!.data), 1e-4, "\(name) decoded")
    }

    func testSDLikeVAEMatchesDiffusersEncodeAndDecode() throws { try check("sd-like") }

    func testShiftedVAEWithoutQuantConvsMatchesDiffusers() throws { try check("shifted") }

    func testSampledLatentsAreMeanPlusStdTimesSeededNoise() throws {
        let vae = try AutoencoderKL(path: TestSupport.fixture("vae/sd-like"))
        let images = tensor(try readTensors(TestSupport.fixture("vae/sd-like-expected.safetensors"))["images"]!)
        let (mean, std) = try vae.encode(images)
        var generator = NormalGenerator(seed: 5)
        let noise = generator.tensor(mean.shape)
        let sampled = try vae.latents(of: images, noise: noise)
        for i in stride(from: 0, to: mean.count, by: 7) {
            XCTAssertEqual(sampled.data[i], (mean.data[i] + std.data[i] * noise.data[i]) * vae.config.scalingFactor, accuracy: 1e-5)
        }
        XCTAssertNotEqual(sampled.data, try vae.latents(of: images).data)
    }

    func testBadInputsAndConfigsAreRefused() throws {
        let vae = try AutoencoderKL(path: TestSupport.fixture("vae/sd-like"))
        XCTAssertThrowsError(try vae.encode(Tensor(zeros: [1, 3, 31, 32]))) { XCTAssertEqual(($0 as! CLIPError).code, .modelBadInput) }
        XCTAssertThrowsError(try vae.decode(Tensor(zeros: [1, 3, 4, 4]))) { XCTAssertEqual(($0 as! CLIPError).code, .modelBadInput) }
        let base = try String(contentsOfFile: TestSupport.fixture("vae/sd-like/config.json"), encoding: .utf8)
        XCTAssertThrowsError(try VAEConfig(json: base.replacingOccurrences(of: "\"norm_num_groups\": 32", with: "\"norm_num_groups\": 5"), file: "c")) {
            XCTAssertEqual(($0 as! CLIPError).code, .modelBadConfig)
        }
        XCTAssertThrowsError(try VAEConfig(json: base.replacingOccurrences(of: "\"latent_channels\": 4", with: "\"latent_channels\": 0"), file: "c")) {
            XCTAssertEqual(($0 as! CLIPError).code, .modelBadConfig)
        }
    }
}
