import ArgumentParser
import TensorFormats
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
        one grid row per prompt (formats/engine-io.md). SDXL base pipelines (also tokenizer_2/, \
        text_encoder_2/) add the pooled embedding and default time ids; the SDXL-Refiner is refused.

        Exit status: 0 success, 2 invalid or unreadable input, 64 usage error.
        """
    )

    @Option(help: "Model: a diffusers folder, a checkpoint with dmsurgery.config metadata, or -.")
    var model: String

    @Option(parsing: .upToNextOption, help: "Conditioning files, one grid row each (conditional models).")
    var cond: [String] = []

    @Option(help: "Output PNG path (- for standard output).")
    var out: String

    @Option(help: "Images per row (default 4, or with --latents its batch over the prompts).")
    var count: Int?

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
        guard count.map({ $0 >= 1 }) ?? true, steps >= 1 else { throw ValidationError("--count and --steps must be at least 1") }
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
        var settings = SampleSettings(model: model, out: out)
        settings.cond = cond
        settings.count = count
        settings.steps = steps
        settings.guidance = guidance
        settings.seed = seed
        settings.scheduler = scheduler
        settings.size = size
        settings.prompts = latent.prompts
        settings.negativePrompt = latent.negativePrompt
        settings.unet = latent.unet
        settings.latents = latent.latents
        settings.saveLatents = latent.saveLatents
        settings.open = input.open
        settings.force = binary.force
        settings.quiet = common.quiet
        try SampleWorkflow.run(settings)
    }
}

/// The options of `sample` on a latent pipeline (prompts in, pictures out).
struct LatentSampleOptions: ParsableArguments {
    @Option(name: .customLong("prompt"), help: "Prompt (repeat for more; one grid row each). Makes --model a latent pipeline folder.")
    var prompts: [String] = []

    @Option(help: "Negative prompt for classifier-free guidance (default: the empty prompt, as diffusers).")
    var negativePrompt: String?

    @Option(help: "UNet to use instead of the pipeline's unet/ (a pruned or unlearned student).")
    var unet: String?

    @Option(help: "Safetensors file whose `latents` [N,C,h,w] is the initial noise (N = prompts x --count; without --count, N / prompts images per row).")
    var latents: String?

    @Option(help: "Write the final latents (before decoding) to this safetensors file.")
    var saveLatents: String?
}
