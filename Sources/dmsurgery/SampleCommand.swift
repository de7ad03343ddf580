import ArgumentParser
import Diffusion
import Foundation
import TensorFormats
import TensorMath
import UNet
import Workflows

struct SampleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Draw DDIM samples from a pixel-space UNet and save them as a PNG grid.",
        discussion: """
        Deterministic DDIM (eta 0) with the model's scheduler_config.json when it has one (in the model \
        folder or a sibling `scheduler` folder of a diffusers pipeline), else DDIM's defaults. Conditional \
        models take one --cond file per grid row: a safetensors file with `encoder_hidden_states` [1,S,D] \
        and, for classifier-free guidance, `uncond_encoder_hidden_states` [1,S,D] (else zeros). Values \
        in [-1, 1] map to 0...255. With --prompt, --model is a latent pipeline folder (tokenizer/, \
        text_encoder/, unet/, vae/, scheduler/): prompts -> text encoder -> UNet with CFG -> VAE -> PNG, \
        one grid row per prompt (formats/engine-io.md).

        Exit status: 0 success, 2 invalid or unreadable input, 64 usage error.
        """
    )

    @Option(help: "Model: a diffusers folder, a checkpoint with dmsurgery.config metadata, or -.")
    var model: String

    @Option(parsing: .upToNextOption, help: "Conditioning files, one grid row each (conditional models).")
    var cond: [String] = []

    @Option(help: "Output PNG path (- for standard output).")
    var out: String

    @Option(help: "Images per row.")
    var count = 4

    @Option(help: "DDIM steps.")
    var steps = 50

    @Option(help: "Classifier-free guidance scale (conditional models; 1 disables guidance).")
    var guidance: Float = 7.5

    @Option(help: "Seed of the initial noise.")
    var seed: UInt64 = 0

    @Option(help: "scheduler_config.json to use instead of the model's.")
    var scheduler: String?

    @Option(help: "Image height and width; default the config's sample_size.")
    var size: Int?

    @OptionGroup var latent: LatentSampleOptions
    @OptionGroup var input: InputOptions
    @OptionGroup var binary: BinaryOutputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard count >= 1, steps >= 1 else { throw ValidationError("--count and --steps must be at least 1") }
        try requireFinite(["--guidance": guidance])
        // An option that does not apply is refused, not ignored (a silent no-op reads as success).
        let latentOnly: [(String, String?)] = [("--negative-prompt", latent.negativePrompt), ("--unet", latent.unet),
                                               ("--latents", latent.latents), ("--save-latents", latent.saveLatents)]
        if latent.prompts.isEmpty, let option = latentOnly.first(where: { $0.1 != nil })?.0 {
            throw ValidationError("\(option) applies to a latent pipeline (--prompt); a pixel-space sample has none")
        }
        if !latent.prompts.isEmpty && !cond.isEmpty {
            throw ValidationError("--cond conditions a pixel-space model; with --prompt the text encoder conditions the UNet")
        }
    }

    func run() throws {
        if !latent.prompts.isEmpty { return try sampleLatentPipeline(self) }
        try InputSet.declare(inputs: [(model, "MODEL"), (scheduler, "--scheduler")] + cond.map { ($0, "--cond") },
                             outputs: [(out, "--out")])
        var unet = try loadUNet(model: model, input: input)
        unet.frozenWeightTransforms = WinogradWeightCache()
        let cfg = unet.config
        guard cfg.outChannels == 1 || cfg.outChannels == 3 else {
            throw ValidationError("sample draws pixel-space models (1 or 3 output channels); this one has \(cfg.outChannels)")
        }
        if unet.contextDim != nil && cond.isEmpty {
            throw ValidationError("a conditional model needs at least one --cond file")
        }
        if unet.contextDim == nil && !cond.isEmpty {
            throw ValidationError("--cond is only for conditional models")
        }
        let ddim = DDIMSampler(try loadSchedulerConfig(model: model, explicit: scheduler))
        let side = size ?? cfg.sampleSize ?? 32
        do { try unet.checkInput(batch: count, height: side, width: side, training: false, option: "--count or --size") } catch let error as UNetError {
            throw located(error, file: model)
        }
        var rng = NormalGenerator(seed: seed)
        var rows: [Tensor] = []
        let conditions: [(Tensor, Tensor)?] = unet.contextDim == nil ? [nil] : try cond.map { try loadCondition($0, unet) }
        for (i, condition) in conditions.enumerated() {
            let noise = rng.tensor([count, cfg.inChannels, side, side])
            let image = try ddim.sample(from: noise, steps: steps) { x, t in
                let ts = [Float](repeating: Float(t), count: count)
                guard let (c, u) = condition else { return try unet(sample: x, timesteps: ts) }
                let one = [Int](repeating: 0, count: count)
                let cb = c.items(one), ub = u.items(one)
                if guidance == 1 { return try unet(sample: x, timesteps: ts, encoderHiddenStates: cb) }
                let both = try unet(sample: Tensor.joined([x, x]), timesteps: ts + ts,
                                    encoderHiddenStates: Tensor.joined([ub, cb]))
                let half = both.count / 2
                let uncond = Tensor(shape: x.shape, data: Array(both.data[..<half]))
                let condOut = Tensor(shape: x.shape, data: Array(both.data[half...]))
                return classifierFreeGuidance(unconditional: uncond, conditional: condOut, scale: guidance)
            }
            rows.append(image)
            note("row \(i + 1)/\(conditions.count) done", quiet: common.quiet)
        }
        let png = try PNGImage.grid(Tensor.joined(rows), columns: count)
        try writeBytes(png, to: out, force: binary.force)
    }

    private func loadCondition(_ path: String, _ unet: UNet2D) throws -> (Tensor, Tensor) {
        let file = try openCheckpoint(path, input, randomAccess: true).withRandomAccess()
        guard let entry = file.entry(named: "encoder_hidden_states") else {
            throw located(UNetError(.badInput, "encoder_hidden_states", "missing"), file: path)
        }
        let c = Tensor(shape: entry.shape, data: try file.floats(of: entry))
        guard c.rank == 3, c.shape[0] == 1, c.shape[2] == unet.contextDim else {
            throw located(UNetError(.badInput, "encoder_hidden_states", "shape \(c.shape), expected [1, S, \(unet.contextDim ?? 0)]"), file: path)
        }
        var u = Tensor(zeros: c.shape)
        if let ue = file.entry(named: "uncond_encoder_hidden_states") {
            u = Tensor(shape: ue.shape, data: try file.floats(of: ue))
            guard u.shape == c.shape else {
                throw located(UNetError(.badInput, "uncond_encoder_hidden_states", "shape \(u.shape) differs from \(c.shape)"), file: path)
            }
        }
        return (c, u)
    }
}
