import Foundation
import TensorFormats
import TensorMath
import UNet

/// What `forward` is told, as plain values.
public struct ForwardSettings: Sendable {
    public var model: String
    /// Safetensors file with `sample`, `timestep`, `encoder_hidden_states`, `text_embeds` and `time_ids`
    /// (SDXL) and (backward) `cotangent`.
    public var inputs: String
    public var output: String
    /// Also the gradients of sum(output * cotangent).
    public var backward = false
    /// Also every block output.
    public var blocks = false
    public var open = OpenOptions()
    public var force = false
    public var quiet = false

    public init(model: String, inputs: String, output: String) {
        self.model = model
        self.inputs = inputs
        self.output = output
    }
}

/// `forward`'s body: one UNet forward (and optionally backward) pass on inputs from a file.
public enum ForwardWorkflow {
    /// Runs the pass and writes OUTPUT; returns how many tensors were written.
    @discardableResult
    public static func run(_ s: ForwardSettings) throws -> Int {
        let model = s.model, inputs = s.inputs, output = s.output, backward = s.backward
        try InputSet.declare(inputs: [(model, "--model"), (inputs, "--inputs")], outputs: [(output, "--output")])
        let unet: UNet2D
        switch try loadEngineModel(model: model, open: s.open) {
        case .pixart(let dit): return try PixArtWorkflow.forward(s, model: dit)
        case .unet(let u): unet = u
        }
        let io = try openCheckpoint(inputs, s.open, randomAccess: true).withRandomAccess()
        func tensor(_ name: String, required: Bool = true) throws -> Tensor? {
            guard let entry = io.entry(named: name) else {
                if required { throw UNetError(.badInput, name, "missing") }
                return nil
            }
            return Tensor(shape: entry.shape, data: try io.floats(of: entry))
        }
        let sample: Tensor, timesteps: [Float], context: Tensor?, textTime: TextTimeInputs?, cotangent: Tensor?
        let (out, tape): (UNetOutput, UNetTape?)
        do {
            sample = try tensor("sample")!
            timesteps = try tensor("timestep")!.data
            context = unet.contextDim == nil ? nil : try tensor("encoder_hidden_states")
            textTime = unet.config.textTime == nil ? nil
                : TextTimeInputs(textEmbeds: try tensor("text_embeds")!, timeIds: try tensor("time_ids")!)
            cotangent = backward ? try tensor("cotangent") : nil
            (out, tape) = try unet.forward(sample: sample, timesteps: timesteps, encoderHiddenStates: context,
                                           textTime: textTime, recording: backward)
        } catch let error as UNetError {
            throw located(error, file: inputs)
        }
        var results: [(name: String, shape: [Int], values: [Float])] = [("sample", out.sample.shape, out.sample.data)]
        if s.blocks {
            for (id, t) in out.blocks { results.append(("block.\(id)", t.shape, t.data)) }
        }
        if let tape, let cotangent {
            guard cotangent.shape == out.sample.shape else {
                throw located(UNetError(.badInput, "cotangent", "shape \(cotangent.shape), the output is \(out.sample.shape)"), file: inputs)
            }
            let g = unet.backward(tape, outputGradient: cotangent, parameterGradients: true)
            results.append(("grad.sample", g.sample.shape, g.sample.data))
            if let e = g.encoderHiddenStates { results.append(("grad.encoder_hidden_states", e.shape, e.data)) }
            if let e = g.textEmbeds { results.append(("grad.text_embeds", e.shape, e.data)) }
            if let e = g.timeIds { results.append(("grad.time_ids", e.shape, e.data)) }
            for (name, t) in g.parameters { results.append(("grad.\(name)", t.shape, t.data)) }
        }
        try SafetensorsWriter.writeFloats(results, to: output, force: s.force)
        note("wrote \(results.count) tensors to \(output)", quiet: s.quiet)
        return results.count
    }
}
