import ArgumentParser
import CLIP
import Diffusion
import Foundation
import TensorFormats
import TensorMath
import VAE
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
        try InputSet.declare(inputs: [(model, "MODEL"), (input, "IN")], outputs: [(output, "OUT")])
        let vae = try AutoencoderKL(path: PipelineParts(model).vae)
        let images = try readImages(input, inputOptions)
        var noise: Tensor?
        if sample {
            let f = vae.config.downscale
            var generator = NormalGenerator(seed: seed)
            noise = generator.tensor([images.shape[0], vae.config.latentChannels, images.shape[2] / max(1, f), images.shape[3] / max(1, f)])
        }
        let latents: Tensor
        do { latents = try vae.latents(of: images, noise: noise) } catch { throw error.inFile(input) }
        try SafetensorsWriter.writeFloats([("latents", latents.shape, latents.data)], to: output, force: binary.force)
        note("wrote latents \(formatShape(latents.shape)) to \(output)", quiet: common.quiet)
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
        try InputSet.declare(inputs: [(model, "MODEL"), (input, "IN")], outputs: [(output, "OUT")])
        let vae = try AutoencoderKL(path: PipelineParts(model).vae)
        let latents = try readTensor("latents", from: input, inputOptions)
        let images: Tensor
        do { images = try vae.images(fromLatents: latents) } catch { throw error.inFile(input) }
        if output.lowercased().hasSuffix(".png") {
            try writeBytes(try PNGImage.grid(images, columns: columns), to: output, force: binary.force)
        } else {
            try SafetensorsWriter.writeFloats([("images", images.shape, images.data)], to: output, force: binary.force)
        }
        note("wrote images \(formatShape(images.shape)) to \(output)", quiet: common.quiet)
    }
}

/// `images` of a safetensors file, or one PNG file as [1, 3, H, W] in [-1, 1].
func readImages(_ path: String, _ options: InputOptions) throws -> Tensor {
    if path.lowercased().hasSuffix(".png") {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TensorFormatError(.notFound, "cannot read", file: path)
        }
        return try PNGImage.decode(Array(data), file: path)
    }
    if path.lowercased().hasSuffix(".jpg") || path.lowercased().hasSuffix(".jpeg") {
        throw TensorFormatError(.unsupported, "JPEG input is not supported; convert to PNG", file: path)
    }
    return try readTensor("images", from: path, options)
}

/// One float tensor of a checkpoint file, by name.
func readTensor(_ name: String, from path: String, _ options: InputOptions) throws -> Tensor {
    let checkpoint = try openCheckpoint(path, options, randomAccess: true).withRandomAccess()
    guard let entry = checkpoint.entry(named: name) else {
        throw TensorFormatError(.missingTensor, "no tensor '\(name)'", file: path, tensor: name)
    }
    return Tensor(shape: entry.shape, data: try checkpoint.floats(of: entry))
}

extension CLIPError {
    /// The same error, attributed to `file` unless it already names one.
    func inFile(_ file: String) -> CLIPError {
        var copy = self
        if copy.file == nil { copy.file = file }
        return copy
    }
}
