import ArgumentParser
import Foundation
import TensorFormats
import TensorMath
import UNet
import Workflows

struct ForwardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Run a UNet forward (and optionally backward) pass on inputs from a safetensors file.",
        discussion: """
        INPUTS holds `sample` [B,C,H,W], `timestep` [B] or [] (any float or integer dtype) and, for \
        UNet2DConditionModel, `encoder_hidden_states` [B,S,D]. OUTPUT gets `sample` (float32). With \
        --backward, INPUTS also holds `cotangent` (the output's shape) and OUTPUT also gets the \
        vector-Jacobian product of sum(output * cotangent): `grad.sample`, `grad.encoder_hidden_states` \
        and `grad.<parameter>` for every parameter. --blocks adds every block output as `block.down.<i>`, \
        `block.mid`, `block.up.<i>`.

        Exit status: 0 success, 2 invalid or unreadable input, 64 usage error.
        """
    )

    @Option(help: "Model: a diffusers folder, a checkpoint with dmsurgery.config metadata, or -.")
    var model: String

    @Option(help: "Safetensors file with the inputs.")
    var inputs: String

    @Option(help: "Output safetensors file (- for standard output).")
    var output: String

    @Flag(help: "Also compute gradients of sum(output * cotangent).")
    var backward = false

    @Flag(help: "Also write every block output (feature-distillation taps).")
    var blocks = false

    @OptionGroup var input: InputOptions
    @OptionGroup var binary: BinaryOutputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard model != "-" || inputs != "-" else { throw ValidationError("--model and --inputs cannot both be standard input") }
    }

    func run() throws {
        try InputSet.declare(inputs: [(model, "--model"), (inputs, "--inputs")], outputs: [(output, "--output")])
        let unet = try loadUNet(model: model, input: input)
        let io = try openCheckpoint(inputs, input, randomAccess: true).withRandomAccess()
        func tensor(_ name: String, required: Bool = true) throws -> Tensor? {
            guard let entry = io.entry(named: name) else {
                if required { throw UNetError(.badInput, name, "missing") }
                return nil
            }
            return Tensor(shape: entry.shape, data: try io.floats(of: entry))
        }
        let sample: Tensor, timesteps: [Float], context: Tensor?, cotangent: Tensor?
        let (out, tape): (UNetOutput, UNetTape?)
        do {
            sample = try tensor("sample")!
            timesteps = try tensor("timestep")!.data
            context = unet.contextDim == nil ? nil : try tensor("encoder_hidden_states")
            cotangent = backward ? try tensor("cotangent") : nil
            (out, tape) = try unet.forward(sample: sample, timesteps: timesteps, encoderHiddenStates: context, recording: backward)
        } catch let error as UNetError {
            throw located(error, file: inputs)
        }
        var results: [(name: String, shape: [Int], values: [Float])] = [("sample", out.sample.shape, out.sample.data)]
        if blocks {
            for (id, t) in out.blocks { results.append(("block.\(id)", t.shape, t.data)) }
        }
        if let tape, let cotangent {
            guard cotangent.shape == out.sample.shape else {
                throw located(UNetError(.badInput, "cotangent", "shape \(cotangent.shape), the output is \(out.sample.shape)"), file: inputs)
            }
            let g = unet.backward(tape, outputGradient: cotangent, parameterGradients: true)
            results.append(("grad.sample", g.sample.shape, g.sample.data))
            if let e = g.encoderHiddenStates { results.append(("grad.encoder_hidden_states", e.shape, e.data)) }
            for (name, t) in g.parameters { results.append(("grad.\(name)", t.shape, t.data)) }
        }
        try SafetensorsWriter.writeFloats(results, to: output, force: binary.force)
        note("wrote \(results.count) tensors to \(output)", quiet: common.quiet)
    }
}
