import Diffusion
import Foundation
import TensorMath
import XCTest
@testable import UNet

/// Whole DDIM chains (scheduler + UNet + classifier-free guidance through `guidedPrediction`, the one
/// every sampler uses) against diffusers' loop.
final class SamplingTests: XCTestCase {
    func testDDIMChainsMatchDiffusers() throws {
        let golden = try FixtureReader.read("sampling.safetensors")
        let sampler = DDIMSampler(try SchedulerConfig(json: try FixtureReader.text("scheduler_config.json")))

        let ddpm = try ParityTests.load("ddpm_small").model
        let plain = try sampler.sample(from: golden["ddpm_small.noise"]!, steps: 5) { x, t in
            try ddpm(sample: x, timesteps: [Float(t)])
        }
        XCTAssertLessThanOrEqual(relativeMaxError(plain, golden["ddpm_small.result"]!), 1e-4)

        let cond = try ParityTests.load("cond_small").model
        let c = golden["cond_small.cond"]!, u = golden["cond_small.uncond"]!
        let n = golden["cond_small.noise"]!.shape[0]
        func repeated(_ t: Tensor, _ k: Int) -> [Float] { Array([[Float]](repeating: t.data, count: k).joined()) }
        let unconditional = Tensor(shape: [n] + c.shape.dropFirst(), data: repeated(u, n))
        let conditional = Tensor(shape: [n] + c.shape.dropFirst(), data: repeated(c, n))
        let guided = try sampler.sample(from: golden["cond_small.noise"]!, steps: 5) { x, t in
            try guidedPrediction(cond, sample: x, timesteps: [Float](repeating: Float(t), count: n),
                                 unconditional: unconditional, conditional: conditional, scale: 3)
        }
        XCTAssertLessThanOrEqual(relativeMaxError(guided, golden["cond_small.result"]!), 1e-4)
    }
}
