import ArgumentParser
import CLIP
import Diffusion
import Foundation
import TensorFormats
import TensorMath
import UNet
import VAE
import Workflows

/// The options of `sample` on a latent pipeline (prompts in, pictures out).
struct LatentSampleOptions: ParsableArguments {
    @Option(name: .customLong("prompt"), help: "Prompt (repeat for more; one grid row each). Makes --model a latent pipeline folder.")
    var prompts: [String] = []

    @Option(help: "Negative prompt for classifier-free guidance (default: the empty prompt, as diffusers).")
    var negativePrompt: String?

    @Option(help: "UNet to use instead of the pipeline's unet/ (a pruned or unlearned student).")
    var unet: String?

    @Option(help: "Safetensors file whose `latents` [N,C,h,w] is the initial noise (N = prompts x --count).")
    var latents: String?

    @Option(help: "Write the final latents (before decoding) to this safetensors file.")
    var saveLatents: String?
}

/// Text encoder -> UNet with classifier-free guidance (DDIM, the pipeline's scheduler) -> VAE -> PNG, as
/// diffusers' StableDiffusionPipeline: noise [N, C, size/f, size/f] (f the VAE's downscale) from the
/// seeded generator unless --latents gives it; prompts repeated --count times in order.
func sampleLatentPipeline(_ command: SampleCommand) throws {
    let options = command.latent, pipeline = PipelineParts(command.model)
    try InputSet.declare(inputs: [(command.model, "MODEL"), (options.unet, "--unet"), (options.latents, "--latents")],
                         outputs: [(command.out, "--out"), (options.saveLatents, "--save-latents")])
    let encoder = try PromptEncoder(pipeline: command.model)
    guard !encoder.penultimate else {
        throw CLIPError(.modelUnsupported, "SDXL pipelines need the UNet's text_time conditioning, which the engine lacks", file: command.model)
    }
    let unetPath = options.unet ?? pipeline.part("unet") ?? command.model
    var unet = try loadUNet(model: unetPath, input: command.input)
    unet.frozenWeightTransforms = WinogradWeightCache()
    let vaePath = pipeline.vae
    let vae = try AutoencoderKL(path: vaePath)
    guard vae.config.latentChannels == unet.config.inChannels else {
        throw CLIPError(.modelBadConfig, "VAE latent_channels \(vae.config.latentChannels) differ from the UNet's in_channels \(unet.config.inChannels) (\(unetPath))", file: vaePath + "/config.json", tensor: "latent_channels")
    }
    guard unet.contextDim == encoder.width else {
        throw CLIPError(.modelBadConfig, "the text encoder's width \(encoder.width) differs from the UNet's cross_attention_dim \(unet.contextDim.map(String.init) ?? "none")", file: unetPath, tensor: "cross_attention_dim")
    }
    let prompts = options.prompts.flatMap { [String](repeating: $0, count: command.count) }
    let n = prompts.count
    let (cond, _) = try encoder.encode(prompts)
    let uncondRow: Tensor
    if let negative = options.negativePrompt {
        uncondRow = try encoder.encode([negative]).hidden.reshaped([encoder.length, encoder.width])
    } else {
        uncondRow = try encoder.emptyPrompt().hidden
    }
    let uncond = Tensor.joined([Tensor](repeating: uncondRow.reshaped([1, encoder.length, encoder.width]), count: n))
    let f = vae.config.downscale
    let side = command.size ?? (unet.config.sampleSize ?? 64) * f
    guard side % f == 0, side / f >= 1 else { throw ValidationError("--size must be a multiple of \(f)") }
    let noise: Tensor
    if let path = options.latents {
        noise = try readTensor("latents", from: path, command.input)
        guard noise.shape.count == 4, noise.shape.prefix(2) == [n, unet.config.inChannels] else {
            throw TensorFormatError(.invalidShape, "latents \(noise.shape) must be [\(n), \(unet.config.inChannels), h, w]", file: path, tensor: "latents")
        }
    } else {
        var rng = NormalGenerator(seed: command.seed)
        noise = rng.tensor([n, unet.config.inChannels, side / f, side / f])
    }
    let ddim = DDIMSampler(try loadSchedulerConfig(model: unetPath, explicit: command.scheduler))
    let final = try ddim.sample(from: noise, steps: command.steps) { x, t in
        let ts = [Float](repeating: Float(t), count: n)
        if command.guidance == 1 { return try unet(sample: x, timesteps: ts, encoderHiddenStates: cond) }
        let both = try unet(sample: Tensor.joined([x, x]), timesteps: ts + ts, encoderHiddenStates: Tensor.joined([uncond, cond]))
        let half = both.count / 2
        return classifierFreeGuidance(unconditional: Tensor(shape: x.shape, data: Array(both.data[..<half])),
                                      conditional: Tensor(shape: x.shape, data: Array(both.data[half...])), scale: command.guidance)
    }
    if let path = options.saveLatents {
        try SafetensorsWriter.writeFloats([("latents", final.shape, final.data)], to: path, force: command.binary.force)
    }
    let images = try vae.images(fromLatents: final)
    try writeBytes(try PNGImage.grid(images, columns: command.count), to: command.out, force: command.binary.force)
    note("wrote \(n) images to \(command.out)", quiet: command.common.quiet)
}
