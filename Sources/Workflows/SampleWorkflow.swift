import CLIP
import Diffusion
import Foundation
import TensorFormats
import TensorMath
import UNet
import VAE

/// A request the command line accepted but the loaded inputs make meaningless (a conditional model
/// without conditions, say): the CLI reports it as a usage error (exit 64), like its own parse errors.
public struct UsageError: Error, Sendable {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }
}

/// What `sample` is told, as plain values.
public struct SampleSettings: Sendable {
    /// A pixel-space UNet (folder, checkpoint or -), or with `prompts` a latent pipeline folder.
    public var model: String
    /// PNG path or `-`.
    public var out: String
    /// Conditioning files, one grid row each (pixel-space conditional models).
    public var cond: [String] = []
    /// Images per row; nil: 4, or for `latents` its batch over the prompts (as diffusers takes it).
    public var count: Int?
    public var steps = 50
    public var guidance: Float = 7.5
    public var seed: UInt64 = 0
    public var scheduler: String?
    public var size: Int?
    /// Prompts (latent pipelines): one grid row each.
    public var prompts: [String] = []
    public var negativePrompt: String?
    /// A student UNet instead of the pipeline's unet/.
    public var unet: String?
    /// Initial noise: a safetensors file whose `latents` is [N, C, h, w].
    public var latents: String?
    public var saveLatents: String?
    public var open = OpenOptions()
    public var force = false
    public var quiet = false

    public init(model: String, out: String) {
        self.model = model
        self.out = out
    }
}

/// `sample`'s body: deterministic DDIM (eta 0) from a pixel-space UNet (with --cond rows) or a latent
/// pipeline (prompts -> text encoder -> UNet with classifier-free guidance -> VAE), written as one PNG
/// grid (formats/engine-io.md).
public enum SampleWorkflow {
    /// The default images per row when neither --count nor --latents says.
    public static let defaultCount = 4

    /// Draws and writes the grid; returns the number of images. The options of the other kind of model
    /// (`--cond` with prompts; prompts' options without them) are refused by the CLI when it parses them.
    @discardableResult
    public static func run(_ settings: SampleSettings) throws -> Int {
        settings.prompts.isEmpty ? try samplePixelSpace(settings) : try sampleLatentPipeline(settings)
    }

    private static func samplePixelSpace(_ settings: SampleSettings) throws -> Int {
        try InputSet.declare(inputs: [(settings.model, "MODEL"), (settings.scheduler, "--scheduler")] + settings.cond.map { ($0, "--cond") },
                             outputs: [(settings.out, "--out")])
        var unet: UNet2D
        switch try loadEngineModel(model: settings.model, open: settings.open) {
        case .pixart(let dit): return try PixArtWorkflow.sample(settings, model: dit)
        case .unet(let u): unet = u
        }
        unet.frozenWeightTransforms = WinogradWeightCache()
        let cfg = unet.config
        let count = settings.count ?? defaultCount
        guard cfg.outChannels == 1 || cfg.outChannels == 3 else {
            throw UsageError("sample draws pixel-space models (1 or 3 output channels); this one has \(cfg.outChannels)")
        }
        if unet.contextDim != nil && settings.cond.isEmpty { throw UsageError("a conditional model needs at least one --cond file") }
        if unet.contextDim == nil && !settings.cond.isEmpty { throw UsageError("--cond is only for conditional models") }
        let ddim = DDIMSampler(try loadSchedulerConfig(model: settings.model, explicit: settings.scheduler))
        let side = settings.size ?? cfg.sampleSize ?? 32
        do { try unet.checkInput(batch: count, height: side, width: side, training: false, option: "--count or --size") } catch let error as UNetError {
            throw located(error, file: settings.model)
        }
        var rng = NormalGenerator(seed: settings.seed)
        var rows: [Tensor] = []
        let conditions: [(Tensor, Tensor)?] = unet.contextDim == nil ? [nil] : try settings.cond.map { try loadCondition($0, unet, settings.open) }
        for (i, condition) in conditions.enumerated() {
            let noise = rng.tensor([count, cfg.inChannels, side, side])
            let image = try ddim.sample(from: noise, steps: settings.steps) { x, t in
                let ts = [Float](repeating: Float(t), count: count)
                guard let (c, u) = condition else { return try unet(sample: x, timesteps: ts) }
                let one = [Int](repeating: 0, count: count)
                return try guided(unet, x, ts, conditional: c.items(one), unconditional: u.items(one), scale: settings.guidance)
            }
            rows.append(image)
            note("row \(i + 1)/\(conditions.count) done", quiet: settings.quiet)
        }
        try writeBytes(try PNGImage.grid(Tensor.joined(rows), columns: count), to: settings.out, force: settings.force)
        return count * rows.count
    }

    /// A --cond file: `encoder_hidden_states` [1,S,D] and, for guidance, `uncond_encoder_hidden_states`
    /// of the same shape (else zeros).
    private static func loadCondition(_ path: String, _ unet: UNet2D, _ open: OpenOptions) throws -> (Tensor, Tensor) {
        var options = open
        options.randomAccess = true
        let file = try Checkpoint.open(path, options: options).withRandomAccess()
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

    /// Text encoder -> UNet with classifier-free guidance (DDIM, the pipeline's scheduler) -> VAE -> PNG, as
    /// diffusers' StableDiffusionPipeline: noise [N, C, size/f, size/f] (f the VAE's downscale) from the
    /// seeded generator unless --latents gives it; prompts repeated `count` times in order.
    private static func sampleLatentPipeline(_ settings: SampleSettings) throws -> Int {
        let pipeline = PipelineParts(settings.model)
        try InputSet.declare(inputs: [(settings.model, "MODEL"), (settings.unet, "--unet"), (settings.latents, "--latents"), (settings.scheduler, "--scheduler")],
                             outputs: [(settings.out, "--out"), (settings.saveLatents, "--save-latents")])
        let encoder = try PromptEncoder(pipeline: settings.model)
        // The refiner conditions on an aesthetic score (5 time ids), which StableDiffusionXLImg2ImgPipeline
        // builds and this text-to-image path does not.
        if encoder.penultimate && (encoder.encoders.count == 1 || pipeline.indexFlag("requires_aesthetics_score") == true) {
            throw CLIPError(.modelUnsupported, "the SDXL-Refiner (text_encoder_2 only, requires_aesthetics_score) is not supported; sample takes an SDXL base pipeline", file: settings.model)
        }
        let unetPath = settings.unet ?? pipeline.part("unet") ?? settings.model
        var unet = try loadUNet(model: unetPath, open: settings.open)
        unet.frozenWeightTransforms = WinogradWeightCache()
        let vaePath = pipeline.vae
        let vae = try AutoencoderKL(path: vaePath)
        guard vae.config.latentChannels == unet.config.inChannels else {
            throw CLIPError(.modelBadConfig, "VAE latent_channels \(vae.config.latentChannels) differ from the UNet's in_channels \(unet.config.inChannels) (\(unetPath))", file: vaePath + "/config.json", tensor: "latent_channels")
        }
        guard unet.contextDim == encoder.width else {
            throw CLIPError(.modelBadConfig, "the text encoder's width \(encoder.width) differs from the UNet's cross_attention_dim \(unet.contextDim.map(String.init) ?? "none")", file: unetPath, tensor: "cross_attention_dim")
        }
        guard (unet.config.textTime != nil) == encoder.penultimate else {
            throw CLIPError(.modelBadConfig, encoder.penultimate ? "an SDXL pipeline's UNet needs addition_embed_type text_time"
                                                                 : "a UNet with addition_embed_type text_time needs an SDXL pipeline's two text encoders",
                            file: unetPath, tensor: "addition_embed_type")
        }
        let initial = try settings.latents.map { try initialLatents($0, settings, channels: unet.config.inChannels) }
        let count = settings.count ?? initial.map { $0.shape[0] / settings.prompts.count } ?? defaultCount
        let prompts = settings.prompts.flatMap { [String](repeating: $0, count: count) }
        let n = prompts.count
        let (cond, pooled) = try encoder.encode(prompts)
        let uncondRow: Tensor, uncondPooled: Tensor?
        if let negative = settings.negativePrompt {
            (uncondRow, uncondPooled) = try encoder.encode([negative])
        } else {
            (uncondRow, uncondPooled) = try encoder.emptyPrompt()
        }
        let uncond = Tensor.joined([Tensor](repeating: uncondRow.reshaped([1, encoder.length, encoder.width]), count: n))
        let f = vae.config.downscale
        let noise: Tensor
        if let initial {
            guard initial.shape[0] == n else {
                throw TensorFormatError(.invalidShape, "latents \(initial.shape) hold \(initial.shape[0]) images; --count \(count) x \(settings.prompts.count) prompts needs \(n)",
                                        file: settings.latents ?? "-", tensor: "latents")
            }
            noise = initial
        } else {
            let side = settings.size ?? (unet.config.sampleSize ?? 64) * f
            guard side % f == 0, side / f >= 1 else { throw UsageError("--size must be a multiple of \(f)") }
            var rng = NormalGenerator(seed: settings.seed)
            noise = rng.tensor([n, unet.config.inChannels, side / f, side / f])
        }
        do { try unet.checkInput(batch: 2 * n, height: noise.shape[2], width: noise.shape[3], training: false, option: "--count, --size or --latents") } catch let error as UNetError {
            throw located(error, file: unetPath)
        }
        // SDXL's micro-conditioning as StableDiffusionXLPipeline builds it by default: original size and
        // target size the image's (height, width) in pixels, crop corner (0, 0), on both guidance sides.
        var condTextTime: TextTimeInputs?, uncondTextTime: TextTimeInputs?
        if let pooled, let uncondPooled {
            let h = Float(noise.shape[2] * f), w = Float(noise.shape[3] * f)
            let ids = Tensor(shape: [n, 6], data: Array([[Float]](repeating: [h, w, 0, 0, h, w], count: n).joined()))
            condTextTime = TextTimeInputs(textEmbeds: pooled, timeIds: ids)
            uncondTextTime = TextTimeInputs(textEmbeds: uncondPooled.reshaped([uncondPooled.count]).repeatedItem(n), timeIds: ids)
        }
        // The pipeline's scheduler, also when --unet replaces its UNet by a file that has none beside it.
        let ddim = DDIMSampler(try loadSchedulerConfig(model: settings.model, explicit: settings.scheduler))
        let final = try ddim.sample(from: noise, steps: settings.steps) { x, t in
            let ts = [Float](repeating: Float(t), count: n)
            return try guided(unet, x, ts, conditional: cond, unconditional: uncond, scale: settings.guidance,
                              conditionalTextTime: condTextTime, unconditionalTextTime: uncondTextTime)
        }
        if let path = settings.saveLatents {
            try SafetensorsWriter.writeFloats([("latents", final.shape, final.data)], to: path, force: settings.force)
        }
        let images = try vae.images(fromLatents: final)
        try writeBytes(try PNGImage.grid(images, columns: count), to: settings.out, force: settings.force)
        note("wrote \(n) images to \(settings.out)", quiet: settings.quiet)
        return n
    }

    /// --latents: a rank-4 [N, C, h, w] `latents` tensor whose batch is a whole number of images per
    /// prompt (the count diffusers would take from it) and whose channels are the UNet's.
    private static func initialLatents(_ path: String, _ settings: SampleSettings, channels: Int) throws -> Tensor {
        let latents = try readTensor("latents", from: path, options: settings.open)
        let prompts = settings.prompts.count
        guard latents.rank == 4, latents.shape[1] == channels, latents.shape[0] >= 1, latents.shape[0] % prompts == 0,
              latents.shape[2] >= 1, latents.shape[3] >= 1 else {
            throw TensorFormatError(.invalidShape, "latents \(latents.shape) must be [N, \(channels), h, w] with N a multiple of the \(prompts) prompts",
                                    file: path, tensor: "latents")
        }
        return latents
    }

    /// One denoising prediction with classifier-free guidance (`guidedPrediction`); a scale of 1 is the
    /// conditional prediction alone, so it runs the conditional half only, as diffusers does.
    private static func guided(_ unet: UNet2D, _ x: Tensor, _ timesteps: [Float], conditional: Tensor, unconditional: Tensor,
                               scale: Float, conditionalTextTime: TextTimeInputs? = nil,
                               unconditionalTextTime: TextTimeInputs? = nil) throws -> Tensor {
        if scale == 1 { return try unet(sample: x, timesteps: timesteps, encoderHiddenStates: conditional, textTime: conditionalTextTime) }
        return try guidedPrediction(unet, sample: x, timesteps: timesteps, unconditional: unconditional, conditional: conditional,
                                    scale: scale, unconditionalTextTime: unconditionalTextTime, conditionalTextTime: conditionalTextTime)
    }
}
