import Diffusion
import Foundation
import TensorFormats
import TensorMath
import UNet

/// How much each unit of each layer matters: `scores[layer][unit]`, higher is kept first. One small
/// type per criterion; the pruner only sees the scores, as in Torch-Pruning.
public protocol ImportanceCriterion {
    /// The name recorded in masks (`l1`, `l2`, `taylor`, `random`).
    var name: String { get }
    func scores(_ units: PruningUnits, checkpoint: Checkpoint) throws -> [[Double]]
}

/// Adds `value(k)` (k counted from `start`, the flat index of the first of `count` elements) into the
/// unit sums of `tensor`, one channel run at a time.
func accumulateUnits(_ tensor: CoupledTensor, start: Int, count: Int, into sums: inout [Double],
                     value: (Int) -> Float) {
    let run = tensor.runLength
    let axisLength = tensor.shape[tensor.axis]
    var e = start
    let end = start + count
    while e < end {
        let runIndex = e / run
        let channel = tensor.axis == 0 ? runIndex : runIndex % axisLength
        let runEnd = min(end, (runIndex + 1) * run)
        var s: Float = 0
        for k in e..<runEnd { s += value(k - start) }
        sums[tensor.unit(ofChannel: channel)] += Double(s)
        e = runEnd
    }
}

/// Diff-Pruning's gradient accumulation, shared by every model's Taylor criterion: one fixed noise draw
/// (`seed`), timesteps t = k * T / steps, stopping after the first step whose loss falls under
/// `stopFraction` of the largest. `step` runs the model on (noisy, timesteps, target), adds its
/// parameter gradients into the dictionary and returns the loss.
func taylorGradients(x0: Tensor, schedule: NoiseSchedule, seed: UInt64, steps: Int, stopFraction: Double,
                     progress: ((Int, Int, Float) -> Void)?,
                     step: (Tensor, [Float], Tensor, inout [String: Tensor]) throws -> Float) rethrows -> [String: Tensor] {
    let n = x0.shape[0]
    var noiseSource = NormalGenerator(seed: seed)
    let noise = noiseSource.tensor(x0.shape)
    let total = schedule.config.numTrainTimesteps
    var gradients: [String: Tensor] = [:]
    var maximum: Float = 0
    for k in 0..<max(1, min(steps, total)) {
        let t = k * total / max(1, min(steps, total))
        let ts = Array(repeating: t, count: n)
        let noisy = schedule.addNoise(original: x0, noise: noise, timesteps: ts)
        let target = schedule.target(schedule.config.predictionType, original: x0, noise: noise, timesteps: ts)
        let loss = try step(noisy, ts.map(Float.init), target, &gradients)
        progress?(k, t, loss)
        maximum = max(maximum, loss)
        if Double(loss) < stopFraction * Double(maximum) { break }
    }
    return gradients
}

/// Taylor importance from accumulated gradients: |w * dL/dw| summed over each unit's entries, for any
/// model whose parameters are named as the pruning units name them (UNets and PixArt transformers).
func taylorSums(_ units: PruningUnits, parameters: [String: Tensor], gradients: [String: Tensor]) -> [[Double]] {
    units.layers.map { layer in
        var sums = [Double](repeating: 0, count: layer.units)
        for tensor in layer.tensors {
            guard let w = parameters[tensor.name], let g = gradients[tensor.name] else { continue }
            w.data.withUnsafeBufferPointer { pw in
                g.data.withUnsafeBufferPointer { pg in
                    accumulateUnits(tensor, start: 0, count: pw.count, into: &sums) { abs(pw[$0] * pg[$0]) }
                }
            }
        }
        return sums
    }
}

/// Entries removed with one unit of `layer` (the same for every unit of a layer).
func entriesPerUnit(_ layer: PrunableLayer) -> Int {
    layer.tensors.reduce(0) { $0 + $1.shape.reduce(1, *) / layer.units }
}

/// Magnitude: the mean |w| (l1) or the root mean square (l2) over every entry a unit takes with it.
/// Reads each coupled tensor once, in storage order, in bounded memory; never builds the model.
public struct MagnitudeImportance: ImportanceCriterion {
    public var squared: Bool
    public init(squared: Bool) { self.squared = squared }
    public var name: String { squared ? "l2" : "l1" }

    public func scores(_ units: PruningUnits, checkpoint: Checkpoint) throws -> [[Double]] {
        var sums = units.layers.map { [Double](repeating: 0, count: $0.units) }
        let index = units.tensorIndex()
        var buffer = [Float]()
        for entry in checkpoint.entries {
            guard let (layer, tensor) = index[entry.name] else { continue }
            guard entry.dtype.isFloatingPoint else {
                throw SurgeryError(.unsupported, "magnitude importance needs a real floating-point tensor, not \(entry.dtype.rawValue)",
                                        file: checkpoint.name, tensor: entry.name)
            }
            var offset = 0
            try checkpoint.read(entry) { piece in
                let elements = piece.count * 8 / entry.dtype.bitsPerElement
                if buffer.count < elements { buffer = [Float](repeating: 0, count: elements) }
                buffer.withUnsafeMutableBufferPointer { ElementCodec.decodeFloats(entry.dtype, piece, elements: elements, into: $0) }
                buffer.withUnsafeBufferPointer { b in
                    if squared {
                        accumulateUnits(tensor, start: offset, count: elements, into: &sums[layer]) { b[$0] * b[$0] }
                    } else {
                        accumulateUnits(tensor, start: offset, count: elements, into: &sums[layer]) { abs(b[$0]) }
                    }
                }
                offset += elements
            }
        }
        return zip(units.layers, sums).map { layer, s in
            let n = Double(entriesPerUnit(layer))
            return s.map { squared ? ($0 / n).squareRoot() : $0 / n }
        }
    }
}

/// Seeded uniform scores: the random baseline (SplitMix64, layer by layer, unit by unit).
public struct RandomImportance: ImportanceCriterion {
    public var seed: UInt64
    public init(seed: UInt64) { self.seed = seed }
    public var name: String { "random" }

    public func scores(_ units: PruningUnits, checkpoint: Checkpoint) throws -> [[Double]] {
        var generator = SplitMix64(state: seed)
        func next() -> Double { Double(generator.next() >> 11) / Double(1 << 53) }
        return units.layers.map { layer in (0..<layer.units).map { _ in next() } }
    }
}

/// Diff-Pruning's Taylor importance: |w * dL/dw| summed over a unit's entries, with dL/dw accumulated
/// over timesteps t = 0, 1, ... with one fixed noise draw on the data, stopping after the first step
/// whose loss falls under `stopFraction` of the largest loss so far (Diff-Pruning's threshold 0.05).
public struct TaylorImportance: ImportanceCriterion {
    /// Clean samples [N, C, H, W] as the model consumes them (images or latents).
    public var x0: Tensor
    /// Encoder hidden states [N, S, D] for conditional models.
    public var context: Tensor?
    public var schedule: NoiseSchedule
    public var seed: UInt64
    /// Timesteps visited: t = k * T / steps for k = 0..<steps (every timestep when steps = T).
    public var steps: Int
    public var stopFraction: Double = 0.05
    /// Called after each step with (step, timestep, loss).
    public var progress: ((Int, Int, Float) -> Void)?

    public init(x0: Tensor, context: Tensor?, schedule: NoiseSchedule, seed: UInt64, steps: Int) {
        self.x0 = x0
        self.context = context
        self.schedule = schedule
        self.seed = seed
        self.steps = steps
    }

    public var name: String { "taylor" }

    public func scores(_ units: PruningUnits, checkpoint: Checkpoint) throws -> [[Double]] {
        let model = try UNet2D(checkpoint: checkpoint)
        guard x0.rank == 4, x0.shape[1] == model.config.inChannels else {
            throw UNetError(.badInput, "x0", "shape \(x0.shape), expected [N, \(model.config.inChannels), H, W]")
        }
        let gradients = try taylorGradients(x0: x0, schedule: schedule, seed: seed, steps: steps, stopFraction: stopFraction,
                                            progress: progress) { noisy, timesteps, target, gradients in
            let (out, tape) = try model.forward(sample: noisy, timesteps: timesteps, encoderHiddenStates: context, recording: true)
            let (loss, gradient) = NN.mseLoss(out.sample, target)
            _ = model.backward(tape!, outputGradient: gradient, accumulatingInto: &gradients)
            return loss
        }
        return taylorSums(units, parameters: model.parameters, gradients: gradients)
    }
}
