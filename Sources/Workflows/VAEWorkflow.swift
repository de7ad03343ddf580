import CLIP
import Diffusion
import Foundation
import TensorFormats
import TensorMath
import VAE

/// What `vae encode` and `vae decode` are told, as plain values.
public struct VAESettings: Sendable {
    /// A pipeline folder (its vae/) or a VAE folder.
    public var model: String
    /// encode: images (safetensors `images` or a .png); decode: safetensors `latents`.
    public var input: String
    /// encode: safetensors `latents`; decode: a .png grid or safetensors `images`.
    public var output: String
    /// encode: draw from the posterior instead of taking its mean, with noise seeded by `seed`.
    public var sample = false
    public var seed: UInt64 = 0
    /// decode: images per grid row of PNG output (1...1024).
    public var columns = 4
    public var open = OpenOptions()
    public var force = false
    public var quiet = false

    public init(model: String, input: String, output: String) {
        self.model = model
        self.input = input
        self.output = output
    }
}

/// `vae encode|decode`'s bodies with a pipeline's AutoencoderKL (formats/vae.md).
public enum VAEWorkflow {
    /// Images to scaled latents, written to OUT; returns the latents.
    @discardableResult
    public static func encode(_ s: VAESettings) throws -> Tensor {
        let model = s.model, input = s.input, output = s.output
        try InputSet.declare(inputs: [(model, "MODEL"), (input, "IN")], outputs: [(output, "OUT")])
        let vae = try AutoencoderKL(path: PipelineParts(model).vae)
        let images = try readImages(input, options: s.open)
        var noise: Tensor?
        if s.sample {
            let f = vae.config.downscale
            var generator = NormalGenerator(seed: s.seed)
            noise = generator.tensor([images.shape[0], vae.config.latentChannels, images.shape[2] / max(1, f), images.shape[3] / max(1, f)])
        }
        let latents: Tensor
        do { latents = try vae.latents(of: images, noise: noise) } catch { throw error.inFile(input) }
        try SafetensorsWriter.writeFloats([("latents", latents.shape, latents.data)], to: output, force: s.force)
        note("wrote latents \(formatShape(latents.shape)) to \(output)", quiet: s.quiet)
        return latents
    }

    /// Scaled latents to images, written to OUT (a PNG grid or safetensors); returns the images.
    @discardableResult
    public static func decode(_ s: VAESettings) throws -> Tensor {
        let model = s.model, input = s.input, output = s.output
        try InputSet.declare(inputs: [(model, "MODEL"), (input, "IN")], outputs: [(output, "OUT")])
        let vae = try AutoencoderKL(path: PipelineParts(model).vae)
        let latents = try readTensor("latents", from: input, options: s.open)
        let images: Tensor
        do { images = try vae.images(fromLatents: latents) } catch { throw error.inFile(input) }
        if output.lowercased().hasSuffix(".png") {
            try writeBytes(try PNGImage.grid(images, columns: s.columns), to: output, force: s.force)
        } else {
            try SafetensorsWriter.writeFloats([("images", images.shape, images.data)], to: output, force: s.force)
        }
        note("wrote images \(formatShape(images.shape)) to \(output)", quiet: s.quiet)
        return images
    }
}
