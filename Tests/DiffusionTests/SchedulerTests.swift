import Foundation
import TensorMath
import XCTest
@testable import Diffusion

/// Scheduler values against diffusers 0.42.1 (fixtures/engine/schedulers.safetensors).
final class SchedulerTests: XCTestCase {
    static let golden: [String: Tensor] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fixtures/engine/schedulers.safetensors")
        return try! readF32Safetensors(url)
    }()

    private func g(_ name: String) -> Tensor { Self.golden[name]! }

    private func assertClose(_ a: [Float], _ b: [Float], rel: Float, _ label: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, label, file: file, line: line)
        let scale = b.map(abs).max() ?? 1
        let err = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(err / scale, rel, "\(label): rel err \(err / scale)", file: file, line: line)
    }

    func testAlphasCumprodMatchDiffusersForEveryBetaSchedule() {
        for (schedule, start, end) in [(BetaSchedule.linear, 0.0001, 0.02), (.scaledLinear, 0.00085, 0.012),
                                       (.squaredcosCapV2, 0.0001, 0.02)] {
            var c = SchedulerConfig()
            c.betaSchedule = schedule
            c.betaStart = start
            c.betaEnd = end
            let mine = NoiseSchedule(c).alphasCumprod
            let ref = g("alphas_cumprod.\(schedule.rawValue)").data
            // Also elementwise relative, since late values are tiny.
            for (i, (a, b)) in zip(mine, ref).enumerated() {
                XCTAssertLessThanOrEqual(abs(a - b) / b, 1e-5, "\(schedule) at \(i): \(a) vs \(b)")
            }
        }
    }

    func testAddNoiseAndVelocityMatchDiffusers() {
        let s = NoiseSchedule(.stableDiffusion)
        let t = g("add_noise.timesteps").data.map { Int($0) }
        let noisy = s.addNoise(original: g("add_noise.original"), noise: g("add_noise.noise"), timesteps: t)
        assertClose(noisy.data, g("add_noise.noisy").data, rel: 1e-6, "add_noise")
        let v = s.velocity(sample: g("add_noise.original"), noise: g("add_noise.noise"), timesteps: t)
        assertClose(v.data, g("get_velocity.velocity").data, rel: 1e-6, "get_velocity")
        XCTAssertEqual(s.target(.vPrediction, original: g("add_noise.original"), noise: g("add_noise.noise"), timesteps: t), v)
        XCTAssertEqual(s.target(.epsilon, original: g("add_noise.original"), noise: g("add_noise.noise"), timesteps: t),
                       g("add_noise.noise"))
    }

    func testDDIMTimestepsMatchDiffusersForEverySpacing() {
        for (spacing, offset, steps) in [(TimestepSpacing.leading, 1, 50), (.leading, 0, 7), (.trailing, 0, 10),
                                         (.trailing, 0, 48), (.trailing, 0, 112), (.linspace, 0, 9),
                                         (.linspace, 0, 47), (.linspace, 0, 999)] {
            var c = SchedulerConfig.stableDiffusion
            c.timestepSpacing = spacing
            c.stepsOffset = offset
            let mine = DDIMSampler(c).timesteps(count: steps)
            let ref = g("ddim.timesteps.\(spacing.rawValue).\(offset).\(steps)").data.map { Int($0) }
            XCTAssertEqual(mine, ref, "\(spacing) offset \(offset) steps \(steps)")
        }
    }

    func testDDIMStepMatchesDiffusersForEpsilonAndV() throws {
        let json = try String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("fixtures/engine/scheduler_config.json"), encoding: .utf8)
        for prediction in [PredictionType.epsilon, .vPrediction] {
            var c = try SchedulerConfig(json: json)
            c.predictionType = prediction
            let ddim = DDIMSampler(c)
            let ts = ddim.timesteps(count: 20)
            for t in [ts.first!, ts.last!] {
                let y = ddim.step(modelOutput: g("ddim.step.model_output"), timestep: t, sample: g("ddim.step.sample"), stepCount: 20)
                assertClose(y.data, g("ddim.step.\(prediction.rawValue).\(t)").data, rel: 1e-5, "\(prediction) t=\(t)")
            }
        }
    }

    func testSchedulerConfigRefusesUnsupportedKeys() {
        XCTAssertThrowsError(try SchedulerConfig(json: #"{"beta_schedule": "sigmoid"}"#)) { e in
            XCTAssertEqual((e as? SchedulerConfigError)?.key, "beta_schedule")
        }
        XCTAssertThrowsError(try SchedulerConfig(json: #"{"thresholding": true}"#)) { e in
            XCTAssertEqual((e as? SchedulerConfigError)?.key, "thresholding")
        }
    }

    func testClassifierFreeGuidanceExtrapolatesFromUnconditional() {
        let u = Tensor(shape: [2], data: [1, 2]), c = Tensor(shape: [2], data: [3, 1])
        XCTAssertEqual(classifierFreeGuidance(unconditional: u, conditional: c, scale: 7.5).data, [16, -5.5])
    }
}

/// Minimal F32 safetensors reader for the fixtures (the product uses TensorFormats).
func readF32Safetensors(_ url: URL) throws -> [String: Tensor] {
    let data = try Data(contentsOf: url)
    let n = data.prefix(8).withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
    let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as! [String: Any]
    var result: [String: Tensor] = [:]
    for (name, value) in header where name != "__metadata__" {
        let entry = value as! [String: Any]
        let shape = (entry["shape"] as! [NSNumber]).map(\.intValue)
        let offsets = (entry["data_offsets"] as! [NSNumber]).map(\.intValue)
        let count = shape.reduce(1, *)
        let bytes = data.subdata(in: (8 + n + offsets[0])..<(8 + n + offsets[1]))
        let floats = bytes.withUnsafeBytes { raw in
            (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
        result[name] = Tensor(shape: shape, data: floats)
    }
    return result
}
