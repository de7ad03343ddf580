import ArgumentParser
import Workflows

struct VAECommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vae",
        abstract: "Encode images to latents or decode latents to images with a pipeline's AutoencoderKL.",
        discussion: """
        MODEL is a pipeline folder (its vae/ is used) or a VAE folder (config.json and \
        diffusion_pytorch_model.safetensors). Files: formats/vae.md.

        Exit status: 0 success, 2 invalid or unreadable input, 64 usage error.
        """,
        subcommands: [VAEEncodeCommand.self, VAEDecodeCommand.self]
    )
}

struct VAEEncodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Images to scaled latents.",
        discussion: """
        IN is a safetensors file with `images` [N,3,H,W] in [-1,1] (H, W multiples of the VAE's \
        downscale), or a .png file. OUT (safetensors, - for standard output) gets `latents` [N,C,H/f,W/f]: \
        (posterior mean - shift_factor) x scaling_factor, or with --sample a draw mean + std x noise, the \
        noise standard normal from dmsurgery's generator seeded by --seed.
        """
    )

    @Argument(help: "Pipeline folder or VAE folder.") var model: String
    @Argument(help: "Images: safetensors with `images`, or a .png file.") var input: String
    @Argument(help: "Output safetensors file with `latents`.") var output: String
    @Flag(help: "Sample the posterior instead of taking its mean.") var sample = false
    @Option(help: "Seed of the sampling noise (with --sample).") var seed: UInt64 = 0
    @OptionGroup var inputOptions: InputOptions
    @OptionGroup var binary: BinaryOutputOptions
    @OptionGroup var common: CommonOptions

    func run() throws {
        var settings = VAESettings(model: model, input: input, output: output)
        settings.sample = sample
        settings.seed = seed
        settings.open = inputOptions.open
        settings.force = binary.force
        settings.quiet = common.quiet
        try VAEWorkflow.encode(settings)
    }
}

struct VAEDecodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Scaled latents to images.",
        discussion: """
        IN is a safetensors file with `latents` [N,C,h,w] (scaled, as `vae encode` and the UNet use them). \
        OUT is a .png file (a grid of the N images) or a safetensors file (- for standard output) with \
        `images` [N,3,h*f,w*f] = decode(latents / scaling_factor + shift_factor), not clipped.
        """
    )

    @Argument(help: "Pipeline folder or VAE folder.") var model: String
    @Argument(help: "Safetensors file with `latents`.") var input: String
    @Argument(help: "Output: .png grid or safetensors with `images`.") var output: String
    @Option(help: "Images per grid row for PNG output.") var columns = 4
    @OptionGroup var inputOptions: InputOptions
    @OptionGroup var binary: BinaryOutputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard (1...1024).contains(columns) else { throw ValidationError("--columns must be in 1...1024") }
    }

    func run() throws {
        var settings = VAESettings(model: model, input: input, output: output)
        settings.columns = columns
        settings.open = inputOptions.open
        settings.force = binary.force
        settings.quiet = common.quiet
        try VAEWorkflow.decode(settings)
    }
}
