import Foundation
import TensorFormats
import TensorMath
import XCTest
@testable import UNet

/// The memory savings of SD-size training (issue 12 §3, issue 26 §3) change nothing but memory:
/// recomputed activations give the same gradients bit for bit, a teacher held in 16 bits computes what
/// the float32 model computes with its weights rounded to those 16 bits, and a teacher read from its
/// mapped file computes what the model of that file's values computes.
final class BoundedMemoryTests: XCTestCase {
    private static let fixtures = ["cond_pruned", "cond_small", "ddpm_cifar_like", "ddpm_pruned"]

    /// Every block output gets an injected gradient too, as feature distillation does.
    private func gradients(_ model: UNet2D, _ f: ParityTests.Fixture) throws -> (UNetOutput, UNetGradients) {
        let (out, tape) = try model.forward(sample: f.io["sample"]!, timesteps: f.io["timestep"]!.data,
                                            encoderHiddenStates: f.io["encoder_hidden_states"], recording: true)
        var blockGradients: [BlockOutput: Tensor] = [:]
        for (k, (id, t)) in out.blocks.enumerated() {
            blockGradients[id] = Tensor(shape: t.shape, data: t.data.indices.map { Float(($0 * 7 + k) % 13) / 13 - 0.5 })
        }
        let g = model.backward(tape!, outputGradient: f.io["cotangent"]!, blockGradients: blockGradients,
                               parameterGradients: true)
        return (out, g)
    }

    func testRecomputedActivationsGiveBitIdenticalGradients() throws {
        for name in Self.fixtures {
            let f = try ParityTests.load(name)
            var recomputing = f.model
            recomputing.recomputesActivations = true
            let (out, g) = try gradients(f.model, f)
            let (outR, gR) = try gradients(recomputing, f)
            XCTAssertEqual(outR.sample, out.sample, "\(name): output")
            for ((id, a), (_, b)) in zip(out.blocks, outR.blocks) { XCTAssertEqual(a, b, "\(name): block \(id)") }
            XCTAssertEqual(gR.sample, g.sample, "\(name): d sample")
            XCTAssertEqual(gR.encoderHiddenStates, g.encoderHiddenStates, "\(name): d encoder_hidden_states")
            XCTAssertEqual(Set(gR.parameters.keys), Set(f.model.parameters.keys), "\(name): every parameter has a gradient")
            for (k, v) in g.parameters { XCTAssertEqual(gR.parameters[k], v, "\(name): d \(k)") }
        }
    }

    func testRecomputingTapeKeepsOnlyBlockInputs() throws {
        // A recomputing model still records a usable tape when asked not to keep gradients of the parameters.
        let f = try ParityTests.load("cond_small")
        var recomputing = f.model
        recomputing.recomputesActivations = true
        let (_, tape) = try recomputing.forward(sample: f.io["sample"]!, timesteps: f.io["timestep"]!.data,
                                                encoderHiddenStates: f.io["encoder_hidden_states"], recording: true)
        let frozen = recomputing.backward(tape!, outputGradient: f.io["cotangent"]!, parameterGradients: false)
        let full = f.model.backward(try f.model.forward(sample: f.io["sample"]!, timesteps: f.io["timestep"]!.data,
                                                        encoderHiddenStates: f.io["encoder_hidden_states"], recording: true).tape!,
                                    outputGradient: f.io["cotangent"]!, parameterGradients: false)
        XCTAssertTrue(frozen.parameters.isEmpty)
        XCTAssertEqual(frozen.sample, full.sample)
    }

    /// The float32 model whose weights went through `storage` and back.
    private func rounded(_ model: UNet2D, _ storage: FrozenStorage) throws -> UNet2D {
        var m = model
        m.updateParameters { _, p in p = NarrowTensor(p, storage: storage).widened() }
        return m
    }

    func testNarrowTeacherComputesTheRoundedWeightsOutputs() throws {
        for name in Self.fixtures {
            let f = try ParityTests.load(name)
            let x = f.io["sample"]!, ts = f.io["timestep"]!.data, c = f.io["encoder_hidden_states"]
            let reference = try f.model(sample: x, timesteps: ts, encoderHiddenStates: c)
            for storage in [FrozenStorage.float16, .bfloat16] {
                var frozen = f.model
                frozen.freeze(as: storage)
                XCTAssertTrue(frozen.parameters.isEmpty)
                XCTAssertEqual(frozen.parameterCount, f.model.parameterCount)
                XCTAssertEqual(frozen.weightBytes, 2 * f.model.parameterCount)
                let (out, _) = try frozen.forward(sample: x, timesteps: ts, encoderHiddenStates: c, recording: false)
                let (expected, _) = try rounded(f.model, storage).forward(sample: x, timesteps: ts, encoderHiddenStates: c,
                                                                          recording: false)
                // Exactly the outputs of the rounded weights: widening is exact and compute is float32.
                XCTAssertEqual(out.sample, expected.sample, "\(name) \(storage)")
                for ((id, a), (_, b)) in zip(out.blocks, expected.blocks) { XCTAssertEqual(a, b, "\(name) \(storage) block \(id)") }
                // And within the weights' rounding of the float32 teacher (2^-11 half, 2^-8 bfloat16 per weight).
                let bound: Float = storage == .float16 ? 5e-3 : 5e-2
                XCTAssertLessThanOrEqual(relativeMaxError(out.sample, reference), bound, "\(name) \(storage)")
                XCTAssertGreaterThan(relativeMaxError(out.sample, reference), 0, "\(name) \(storage): rounding is visible")
            }
        }
    }

    func testMappedTeacherComputesItsFilesWeightsExactly() throws {
        // Weights read from the mapped file at each use: the float32 model's outputs to the bit, nothing held.
        for name in ["cond_pruned", "ddpm_cifar_like"] {
            let f = try ParityTests.load(name)
            let checkpoint = try Checkpoint.open(FixtureReader.root.appendingPathComponent(name).path,
                                                 options: OpenOptions(randomAccess: true))
            XCTAssertTrue(FrozenStorage.canMap(checkpoint))
            let mapped = try UNet2D(checkpoint: checkpoint, frozen: .mapped)
            XCTAssertTrue(mapped.parameters.isEmpty)
            XCTAssertEqual(mapped.weightBytes, 0)
            XCTAssertEqual(mapped.parameterCount, f.model.parameterCount)
            let x = f.io["sample"]!, ts = f.io["timestep"]!.data, c = f.io["encoder_hidden_states"]
            let (out, _) = try mapped.forward(sample: x, timesteps: ts, encoderHiddenStates: c, recording: false)
            let (expected, _) = try f.model.forward(sample: x, timesteps: ts, encoderHiddenStates: c, recording: false)
            XCTAssertEqual(out.sample, expected.sample, name)
            for ((id, a), (_, b)) in zip(out.blocks, expected.blocks) { XCTAssertEqual(a, b, "\(name) block \(id)") }
        }
    }

    func testHalfFileLoadsExactlyIntoHalfStorage() throws {
        // An F16 file held as float16 is its own values: the same outputs as the float32 model of that file.
        let f = try ParityTests.load("cond_small")
        let half = try rounded(f.model, .float16)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dms-frozen-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("half.safetensors").path
        var metadata = Metadata()
        metadata[MetadataKey.config] = try FixtureReader.text("cond_small/config.json")
        let tensors = half.parameters.keys.sorted().map { name in
            let t = half.parameters[name]!
            let bytes = t.data.flatMap { v -> [UInt8] in
                let b = ElementCodec.halfBits(v)
                return [UInt8(b & 0xFF), UInt8(b >> 8)]
            }
            return (name: name, dtype: DType.f16, shape: t.shape, bytes: bytes)
        }
        try SafetensorsWriter.write(tensors, metadata: metadata, to: path)
        let checkpoint = try Checkpoint.open(path)
        let loaded = try UNet2D(checkpoint: checkpoint, frozen: .float16)
        XCTAssertEqual(loaded.weightBytes, 2 * half.parameterCount)
        let x = f.io["sample"]!, ts = f.io["timestep"]!.data, c = f.io["encoder_hidden_states"]
        XCTAssertEqual(try loaded(sample: x, timesteps: ts, encoderHiddenStates: c),
                       try half(sample: x, timesteps: ts, encoderHiddenStates: c))
        // Read from the mapped F16 file at each use instead: the same outputs, nothing held.
        let mapped = try UNet2D(checkpoint: checkpoint, frozen: .mapped)
        XCTAssertEqual(mapped.weightBytes, 0)
        XCTAssertEqual(try mapped(sample: x, timesteps: ts, encoderHiddenStates: c),
                       try half(sample: x, timesteps: ts, encoderHiddenStates: c))
    }
}
