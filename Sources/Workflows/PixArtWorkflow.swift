import Diffusion
import Dispatch
import Foundation
import Surgery
import TensorFormats
import TensorMath
import UNet

/// A denoising model the engine runs, as the model file says: a diffusers UNet or a PixArt transformer
/// (`_class_name` PixArtTransformer2DModel).
public enum EngineModel: Sendable {
    case unet(UNet2D)
    case pixart(PixArtTransformer)
}

/// Loads MODEL (opened once, so `-` works) or builds CONFIG with random weights, as the UNet or the
/// PixArt transformer its config names; engine errors come out naming the file.
public func loadEngineModel(model: String?, config: String? = nil, open: OpenOptions) throws -> EngineModel {
    let source = model ?? config ?? "-"
    do {
        if let model {
            let checkpoint = try openCheckpoint(model, open, randomAccess: true)
            if let json = checkpoint.configJSON, PixArtConfig.describes(json: json) {
                return .pixart(try PixArtTransformer(checkpoint: checkpoint))
            }
            return .unet(try UNet2D(checkpoint: try LDMConversion.diffusersUNetView(of: checkpoint) ?? checkpoint))
        }
        let text = try MappedFile.text(of: source, what: "the config")
        if PixArtConfig.describes(json: text) {
            return .pixart(try PixArtTransformer(config: try PixArtConfig(json: text), randomSeed: 0))
        }
        return .unet(try UNet2D(config: try UNetConfig(json: text), randomSeed: 0))
    } catch let error as UNetError {
        throw located(error, file: source)
    }
}

/// `forward` and `bench forward` on a PixArt transformer (formats/engine-io.md, "PixArt transformer").
public enum PixArtWorkflow {
    /// The caption length `bench` uses: PixArt-Sigma's pipeline pads T5 captions to 300 tokens.
    public static let benchCaptionTokens = 300

    /// One forward (and with `backward` one backward) pass on inputs from a file; returns how many
    /// tensors were written. Inputs: sample, timestep, encoder_hidden_states, encoder_attention_mask
    /// (optional: every caption token kept), cotangent (backward).
    static func forward(_ s: ForwardSettings, model: PixArtTransformer) throws -> Int {
        guard !s.blocks else { throw UsageError("--blocks: block outputs are written for UNets only, not for a pixart-transformer") }
        let io = try openCheckpoint(s.inputs, s.open, randomAccess: true).withRandomAccess()
        func tensor(_ name: String, required: Bool = true) throws -> Tensor? {
            guard let entry = io.entry(named: name) else {
                if required { throw UNetError(.badInput, name, "missing") }
                return nil
            }
            return Tensor(shape: entry.shape, data: try io.floats(of: entry))
        }
        var results: [(name: String, shape: [Int], values: [Float])] = []
        do {
            let sample = try tensor("sample")!
            let timesteps = try tensor("timestep")!.data
            let context = try tensor("encoder_hidden_states")!
            let mask = try tensor("encoder_attention_mask", required: false)
            let cotangent = s.backward ? try tensor("cotangent") : nil
            let (out, tape) = try model.forward(sample: sample, timesteps: timesteps, encoderHiddenStates: context,
                                                encoderAttentionMask: mask, recording: s.backward)
            results.append(("sample", out.shape, out.data))
            if let tape, let cotangent {
                guard cotangent.shape == out.shape else {
                    throw UNetError(.badInput, "cotangent", "shape \(cotangent.shape), the output is \(out.shape)")
                }
                let g = model.backward(tape, outputGradient: cotangent, parameterGradients: true)
                results.append(("grad.sample", g.sample.shape, g.sample.data))
                results.append(("grad.encoder_hidden_states", g.encoderHiddenStates.shape, g.encoderHiddenStates.data))
                for name in g.parameters.keys.sorted() { results.append(("grad.\(name)", g.parameters[name]!.shape, g.parameters[name]!.data)) }
            }
        } catch let error as UNetError {
            throw located(error, file: s.inputs)
        }
        try SafetensorsWriter.writeFloats(results, to: s.output, force: s.force)
        note("wrote \(results.count) tensors to \(s.output)", quiet: s.quiet)
        return results.count
    }

    /// Inference without a tape on random inputs (caption of `benchCaptionTokens` tokens, every one
    /// kept): the mean of `steps` passes after one warm-up pass.
    static func benchForward(_ model: PixArtTransformer, subject: BenchSubjectSettings, batch: Int, steps: Int,
                             setup: EngineSetup) throws -> BenchReport {
        let cfg = model.config
        let side = subject.size ?? cfg.sampleSize
        let contextWidth = cfg.contextDim
        let shape = [batch, cfg.inChannels, side, side], contextShape = [batch, benchCaptionTokens, contextWidth]
        do {
            try model.checkInputs(sample: shape, timesteps: batch, encoderHiddenStates: contextShape, mask: nil, training: false)
        } catch let error as UNetError {
            throw located(error, file: subject.name)
        }
        var rng = NormalGenerator(seed: 0)
        let x = rng.tensor(shape), context = rng.tensor(contextShape)
        var times: [Double] = []
        for step in 0...steps {
            let start = DispatchTime.now()
            _ = try model(sample: x, timesteps: [Float](repeating: 500, count: batch), encoderHiddenStates: context)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
            if step > 0 { times.append(seconds) }
            note("pass \(step)\(step == 0 ? " (warm-up)" : ""): \(String(format: "%.3f", seconds)) s", quiet: subject.quiet)
        }
        let mean = times.reduce(0, +) / Double(times.count)
        let peak = peakResidentBytes()
        let tokens = (side / cfg.patchSize) * (side / cfg.patchSize)
        let parameters = model.parameters.values.reduce(0) { $0 + $1.count }
        return BenchReport(
            json: [JSONMember("architecture", .string("pixart-transformer")), JSONMember("seconds_per_forward", .double(mean)),
                   JSONMember("parameters", .int(parameters)), JSONMember("batch", .int(batch)), JSONMember("size", .int(side)),
                   JSONMember("tokens", .int(tokens)), JSONMember("caption_tokens", .int(benchCaptionTokens)),
                   JSONMember("peak_rss_bytes", .int(peak))] + setup.jsonMembers,
            rows: [["architecture", "pixart-transformer"], ["seconds per forward", String(format: "%.3f", mean)],
                   ["parameters", formatCount(parameters)],
                   ["batch", "\(batch) x \(cfg.inChannels) x \(side) x \(side) (\(tokens) tokens, \(benchCaptionTokens) caption tokens)"],
                   ["peak resident memory", formatBytes(peak)]] + setup.tableRows)
    }

    /// `sample` on a PixArt transformer: deterministic DDIM (eta 0, the model's scheduler config or
    /// --scheduler) with classifier-free guidance from precomputed caption embeddings, one --cond file per
    /// row of `count` samples; the learned-sigma half of the output is dropped as the pipeline does. OUT
    /// is safetensors with the final `latents` [rows x count, C, s, s] (`vae decode` draws them).
    static func sample(_ settings: SampleSettings, model: PixArtTransformer) throws -> Int {
        guard !settings.cond.isEmpty else { throw UsageError("a PixArt transformer needs at least one --cond file (caption embeddings)") }
        let cfg = model.config
        let count = settings.count ?? SampleWorkflow.defaultCount
        let side = settings.size ?? cfg.sampleSize
        // Latents are not images: x0 is never clipped, as PixArt's own (DPM-Solver) scheduler leaves it.
        var scheduler = try loadSchedulerConfig(model: settings.model, explicit: settings.scheduler)
        scheduler.clipSample = false
        let ddim = DDIMSampler(scheduler)
        guard (1...ddim.config.numTrainTimesteps).contains(settings.steps) else {
            throw UsageError("--steps must be in 1...\(ddim.config.numTrainTimesteps)")
        }
        let captions = try settings.cond.map { try caption($0, width: cfg.contextDim, settings.open) }
        for (path, c) in zip(settings.cond, captions) {
            do {
                try model.checkInputs(sample: [count, cfg.inChannels, side, side], timesteps: count,
                                      encoderHiddenStates: [count] + Array(c.cond.shape.dropFirst()), mask: [count, c.cond.shape[1]], training: false)
            } catch let error as UNetError { throw located(error, file: error.subject == "sample" ? settings.model : path) }
        }
        var rng = NormalGenerator(seed: settings.seed)
        var rows: [Tensor] = []
        let timesteps = ddim.timesteps(count: settings.steps)
        for c in captions {
            var x = rng.tensor([count, cfg.inChannels, side, side])
            let cond = c.cond.items(Array(repeating: 0, count: count)), condMask = c.condMask.items(Array(repeating: 0, count: count))
            let uncond = c.uncond.items(Array(repeating: 0, count: count)), uncondMask = c.uncondMask.items(Array(repeating: 0, count: count))
            for (i, t) in timesteps.enumerated() {
                let ts = [Float](repeating: Float(t), count: count)
                var prediction = epsilon(try model(sample: x, timesteps: ts, encoderHiddenStates: cond, encoderAttentionMask: condMask),
                                         channels: cfg.inChannels)
                if settings.guidance != 1 {
                    let u = epsilon(try model(sample: x, timesteps: ts, encoderHiddenStates: uncond, encoderAttentionMask: uncondMask),
                                    channels: cfg.inChannels)
                    prediction = u + (prediction - u) * settings.guidance
                }
                x = ddim.step(modelOutput: prediction, timestep: t, sample: x, stepCount: settings.steps)
                note("step \(i + 1)/\(timesteps.count) (t = \(t))", quiet: settings.quiet || (i + 1) % 10 != 0)
            }
            rows.append(x)
        }
        let latents = Tensor.joined(rows)
        try SafetensorsWriter.writeFloats([("latents", latents.shape, latents.data)], to: settings.out, force: settings.force)
        note("wrote \(latents.shape[0]) latents to \(settings.out)", quiet: settings.quiet)
        return latents.shape[0]
    }

    /// The first `channels` channels of a [B, 2C, H, W] learned-sigma output (the predicted noise), or
    /// the output itself.
    static func epsilon(_ output: Tensor, channels: Int) -> Tensor {
        guard output.shape[1] > channels else { return output }
        let (b, c, hw) = (output.shape[0], output.shape[1], output.shape[2] * output.shape[3])
        return Tensor(uninitializedShape: [b, channels, output.shape[2], output.shape[3]]) { out in
            for item in 0..<b {
                for i in 0..<(channels * hw) { out[item * channels * hw + i] = output.data[item * c * hw + i] }
            }
        }
    }

    /// A --cond file for a PixArt transformer: `encoder_hidden_states` [1, T, width] and optionally
    /// `encoder_attention_mask` [1, T] (absent: all kept), `uncond_encoder_hidden_states` [1, T', width]
    /// (absent: zeros like the caption) and `uncond_encoder_attention_mask` [1, T'].
    static func caption(_ path: String, width: Int, _ open: OpenOptions) throws -> (cond: Tensor, condMask: Tensor, uncond: Tensor, uncondMask: Tensor) {
        let file = try openCheckpoint(path, open, randomAccess: true).withRandomAccess()
        func read(_ name: String) throws -> Tensor? {
            guard let entry = file.entry(named: name) else { return nil }
            return Tensor(shape: entry.shape, data: try file.floats(of: entry))
        }
        func embeddings(_ name: String, _ maskName: String, fallback: Tensor?) throws -> (Tensor, Tensor) {
            guard let e = try read(name) ?? fallback else { throw located(UNetError(.badInput, name, "missing"), file: path) }
            guard e.rank == 3, e.shape[0] == 1, e.shape[1] >= 1, e.shape[2] == width else {
                throw located(UNetError(.badInput, name, "shape \(e.shape), expected [1, T, \(width)]"), file: path)
            }
            let mask = try read(maskName) ?? Tensor(repeating: 1, shape: [1, e.shape[1]])
            guard mask.shape == [1, e.shape[1]] else {
                throw located(UNetError(.badInput, maskName, "shape \(mask.shape), expected [1, \(e.shape[1])]"), file: path)
            }
            return (e, mask)
        }
        let (cond, condMask) = try embeddings("encoder_hidden_states", "encoder_attention_mask", fallback: nil)
        let (uncond, uncondMask) = try embeddings("uncond_encoder_hidden_states", "uncond_encoder_attention_mask",
                                                  fallback: Tensor(zeros: cond.shape))
        return (cond, condMask, uncond, uncondMask)
    }
}
