import Foundation
import TensorFormats
import TensorMath
import XCTest
@testable import UNet

/// Loading through TensorFormats: a single safetensors file with the config in `dmsurgery.config`
/// metadata and half-precision weights, widened to float32 on load.
final class CheckpointLoadingTests: XCTestCase {
    func testLoadsFloat16CheckpointWithConfigInMetadata() throws {
        let name = "ddpm_small"
        let json = try FixtureReader.text("\(name)/config.json")
        let weights = try FixtureReader.read("\(name)/diffusion_pytorch_model.safetensors")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("unet-f16-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafetensorsWriter.write(weights.sorted { $0.key < $1.key }.map { name, t in
            let halves = t.data.map { Float16($0).bitPattern }
            return (name, DType.f16, t.shape, halves.withUnsafeBytes { Array($0) })
        }, metadata: Metadata([(MetadataKey.config, json)]), to: path)

        let loaded = try UNet2D(checkpoint: try Checkpoint.open(path))
        let reference = try UNet2D(config: try UNetConfig(json: json), weights: weights)
        XCTAssertEqual(loaded.parameters["conv_in.weight"]!.data, weights["conv_in.weight"]!.data.map { Float(Float16($0)) })

        let io = try FixtureReader.read("\(name)/io.safetensors")
        let a = try loaded(sample: io["sample"]!, timesteps: io["timestep"]!.data)
        let b = try reference(sample: io["sample"]!, timesteps: io["timestep"]!.data)
        XCTAssertLessThan(relativeMaxError(a, b), 1e-2, "f16 weights stay close to the f32 model")
        XCTAssertGreaterThan(relativeMaxError(a, b), 0, "the weights really were rounded to f16")
    }

    func testCheckpointWithoutConfigIsRefused() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("unet-noconfig-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafetensorsWriter.writeFloats([("conv_in.weight", [1], [0])], to: path)
        XCTAssertThrowsError(try UNet2D(checkpoint: try Checkpoint.open(path))) { error in
            XCTAssertEqual((error as? UNetError)?.kind, .invalidConfig)
        }
    }
}
