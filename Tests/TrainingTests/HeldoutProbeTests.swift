import Diffusion
import TensorFormats
import TensorMath
import Training
import UNet
import XCTest

/// The held-out probe (`--heldout`): the mean denoising MSE over every item at fixed noise, the same
/// whatever the chunk size, and the same noise on every construction.
final class HeldoutProbeTests: XCTestCase {
    private func data() throws -> (TrainingData, UNet2D) {
        let model = try Fixtures.model("engine/cond_small")
        let file = Fixtures.path("training/data.safetensors")
        let data = try TrainingData(checkpoint: try Checkpoint.open(file, options: OpenOptions(randomAccess: true)), file: file,
                                    role: .data, config: model.config)
        return (data, model)
    }

    func testTheLossIsTheMeanSquaredErrorOverAllItemsAtAnyChunkSize() throws {
        let (data, model) = try data()
        let schedule = try Fixtures.scheduler(prediction: .epsilon)
        var probe = HeldoutProbe(data: data, schedule: schedule, every: 1)
        let batch = probe.batch
        let out = try model.forward(sample: batch.sample, timesteps: batch.timestepValues, encoderHiddenStates: batch.cond,
                                    recording: false).output.sample
        let (expected, _) = Losses.diffusion(prediction: out, target: batch.target, timesteps: batch.timesteps, schedule: schedule,
                                             minSNRGamma: nil)
        XCTAssertGreaterThan(batch.timesteps.count, 2)
        for chunk in [1, 2, batch.timesteps.count] {
            probe.chunk = chunk
            XCTAssertEqual(try probe.loss(model), Double(expected), accuracy: 1e-5 * Double(expected), "chunk \(chunk)")
        }
    }

    func testTheNoiseIsFixedAndTheScheduleOfMeasurementsEndsWithTheLastStep() throws {
        let (data, _) = try data()
        let schedule = try Fixtures.scheduler(prediction: .epsilon)
        let a = HeldoutProbe(data: data, schedule: schedule, every: 3), b = HeldoutProbe(data: data, schedule: schedule, every: 3)
        XCTAssertEqual(a.batch.sample.data, b.batch.sample.data)
        XCTAssertEqual(a.batch.timesteps, b.batch.timesteps)
        XCTAssertEqual((1...7).filter { a.measures(after: $0, of: 7) }, [3, 6, 7])
    }
}
