import CLIP
import Crypto
import Diffusion
import Foundation
import TensorFormats
import TensorMath
import Training
import UNet
import VAE

/// Training data made from prompts or pictures instead of a file (formats/training.md, "Prompt-driven
/// training"). The tokenizer, text encoder and VAE are those of the `--teacher` pipeline folder: the
/// teacher is the frozen model the student imitates, and its conditioning is what the student's
/// cross-attention was trained on (a pruned student is a bare UNet with no text encoder of its own).
/// Text encoder and VAE only run forward, once, before training: they stay frozen.
enum PromptData {
    /// The sha256 of a prompt list, the run description's record of it: the compact JSON array's UTF-8.
    static func digest(_ prompts: [String]) -> String {
        let text = JSONWriter.compact(.array(prompts.map { .string($0) }))
        return SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// `cond` [N,S,D] and `uncond` [S,D] of `prompts` as `encode-prompt` writes them, checked against the
    /// model's cross_attention_dim the way a data file is. A text_time (SDXL) model also gets the pooled
    /// embeddings (`cond_pooled`, `uncond_pooled`) and the time ids of images of `latentSize`
    /// (height, width in latents).
    static func encode(_ prompts: [String], pipeline: String, model: UNet2D, source: String,
                       latentSize: (height: Int, width: Int)) throws -> TrainingData {
        guard !prompts.isEmpty else { throw TensorFormatError(.emptyData, "no prompts", file: source) }
        let encoder = try PromptEncoder(pipeline: pipeline)
        guard let d = model.config.crossAttentionDim else {
            throw TensorFormatError(.unexpectedTensor, "prompts need a conditional model (no cross_attention_dim)", file: pipeline)
        }
        guard encoder.width == d else {
            throw TensorFormatError(.invalidConfig, "the text encoder's width \(encoder.width) differs from the UNet's cross_attention_dim \(d)",
                                    file: PipelineParts(pipeline).part("text_encoder") ?? pipeline)
        }
        let (cond, pooled) = try encoder.encode(prompts)
        let (uncond, uncondPooled) = try encoder.emptyPrompt()
        var data = TrainingData(x0: nil, cond: cond, uncond: uncond, prompts: prompts)
        if model.config.textTime != nil {
            guard let pooled, let uncondPooled else {
                throw TensorFormatError(.invalidConfig, "a text_time (SDXL) UNet needs the pooled embedding of an SDXL pipeline's text_encoder_2", file: pipeline)
            }
            let factor = try vaeDownscale(pipeline)
            data.condPooled = pooled
            data.uncondPooled = uncondPooled
            data.timeIds = timeIds(count: prompts.count, height: latentSize.height * factor, width: latentSize.width * factor)
        }
        return data
    }

    /// SDXL's micro-conditioning as diffusers' SDXL training scripts make it for an image used whole at
    /// its own size: original size = target size = (height, width) in pixels, crop top-left (0, 0).
    static func timeIds(count: Int, height: Int, width: Int) -> Tensor {
        let row: [Float] = [Float(height), Float(width), 0, 0, Float(height), Float(width)]
        return Tensor(shape: [count, 6], data: Array([[Float]](repeating: row, count: count).joined()))
    }

    /// Pixels per latent of the pipeline's VAE: the time ids are sizes in pixels.
    private static func vaeDownscale(_ pipeline: String) throws -> Int {
        guard let vaePath = PipelineParts(pipeline).part("vae") else {
            throw TensorFormatError(.invalidConfig, "SDXL's time ids are image sizes in pixels: the teacher needs to be a pipeline folder with vae/", file: pipeline)
        }
        let configPath = vaePath + "/config.json"
        return try VAEConfig(json: try MappedFile.text(of: configPath, what: "the VAE config"), file: configPath).downscale
    }

    /// Data-free distillation data: `perPrompt` DDIM + CFG samples of the teacher for each prompt of
    /// `file`, in latent space (side `side`, default the config's sample_size), prompts in file order
    /// with their samples together. Seeded apart from the forget images and the training stream.
    static func teacherSamples(file: String, pipeline: String, teacher: UNet2D, model: UNet2D, scheduler: SchedulerConfig,
                               settings: RetainSettings, seed: UInt64, quiet: Bool) throws -> TrainingData {
        let prompts = try readPromptFile(file)
        guard !prompts.isEmpty else { throw TensorFormatError(.emptyData, "the prompt file holds no prompts", file: file) }
        let side = settings.size ?? model.config.sampleSize ?? 32
        var data = try encode(prompts, pipeline: pipeline, model: model, source: file, latentSize: (side, side))
        do { try model.checkInput(batch: 1, height: side, width: side, training: true, option: "--retain-size") } catch let error as UNetError {
            throw located(error, file: file)
        }
        let count = prompts.count.multipliedReportingOverflow(by: settings.samplesPerPrompt)
        let shape = [model.config.inChannels, side, side]
        guard !count.overflow, let floats = MemoryBudget.product([count.partialValue] + shape) else {
            throw TensorFormatError(.tooLarge, "\(prompts.count) prompts x \(settings.samplesPerPrompt) samples overflow", file: file)
        }
        try MemoryBudget.check(MemoryBudget.product([floats, 4]), for: "the retain samples", option: "--retain-samples", file: file)
        let order = prompts.indices.flatMap { Array(repeating: $0, count: settings.samplesPerPrompt) }
        data.cond = data.cond!.items(order)
        data.condPooled = data.condPooled?.items(order)
        data.timeIds = data.timeIds?.items(order)
        data.prompts = order.map { prompts[$0] }
        note("drawing \(order.count) retain samples with the teacher (\(settings.sampleSteps) DDIM steps, guidance \(settings.guidance))", quiet: quiet)
        data.x0 = try generateForgetImages(teacher: teacher, forget: data, scheduler: scheduler, sampleShape: shape,
                                           steps: settings.sampleSteps, guidance: settings.guidance, seed: seed ^ 0x7E7A_1115_A4D1_E500)
        return data
    }

    /// Data from the PNG files of `directory` (sorted by name), encoded by the pipeline's VAE to scaled
    /// latents (the posterior mean times scaling_factor); prompts from `directory/prompts.txt`, one line
    /// per image in the same order, or the empty prompt for every image when that file is absent.
    static func images(directory: String, pipeline: String, model: UNet2D) throws -> TrainingData {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw TensorFormatError(.notFound, "cannot list the image folder", file: directory)
        }
        let pngs = names.filter { $0.lowercased().hasSuffix(".png") }.sorted()
        guard !pngs.isEmpty else { throw TensorFormatError(.emptyData, "no PNG files in the image folder", file: directory) }
        guard let vaePath = PipelineParts(pipeline).part("vae") else {
            throw TensorFormatError(.invalidConfig, "--retain-images needs the teacher to be a pipeline folder with vae/", file: pipeline)
        }
        // The config is checked before the weights are read: a mismatch is refused without loading them.
        let configPath = vaePath + "/config.json"
        let configText = try MappedFile.text(of: configPath, what: "the VAE config")
        let config = try VAEConfig(json: configText, file: configPath)
        guard config.latentChannels == model.config.inChannels else {
            throw TensorFormatError(.invalidConfig, "the VAE's latent_channels \(config.latentChannels) differ from the UNet's in_channels \(model.config.inChannels)",
                                    file: configPath)
        }
        let vae = try AutoencoderKL(path: vaePath)
        let sidecar = directory + "/prompts.txt"
        var prompts = Array(repeating: "", count: pngs.count)
        if FileManager.default.fileExists(atPath: sidecar) {
            prompts = try readPromptFile(sidecar)
            guard prompts.count == pngs.count else {
                throw TensorFormatError(.countMismatch, "\(prompts.count) prompts for \(pngs.count) PNG files (one non-empty line per image)", file: sidecar)
            }
        }
        let factor = vae.config.downscale * model.config.downsampleFactor
        var latents: [Tensor] = []
        var first: (path: String, height: Int, width: Int)?
        for name in pngs {
            let path = directory + "/" + name
            let image = try PNGImage.decode(try MappedFile.contents(of: path), file: path)
            let height = image.shape[2], width = image.shape[3]
            guard height % factor == 0, width % factor == 0 else {
                throw TensorFormatError(.badShape, "\(width)x\(height) pixels: the VAE and the UNet take sides that are multiples of \(factor)", file: path)
            }
            if let first, first.height != height || first.width != width {
                throw TensorFormatError(.badShape, "\(width)x\(height) pixels, \(first.width)x\(first.height) in \(first.path): every image must have the same size", file: path)
            }
            if first == nil {
                let side = (height / vae.config.downscale, width / vae.config.downscale)
                do { try model.checkInput(batch: 1, height: side.0, width: side.1, training: true, option: "--retain-images") } catch let error as UNetError {
                    throw located(error, file: path)
                }
                first = (path, height, width)
            }
            latents.append(try vae.latents(of: image))
        }
        let x0 = Tensor.joined(latents)
        var data = try encode(prompts, pipeline: pipeline, model: model, source: sidecar, latentSize: (x0.shape[2], x0.shape[3]))
        data.x0 = x0
        return data
    }

    /// The tensors of data made in memory by their data-file names, in file order.
    private static func tensors(_ data: TrainingData) -> [(name: String, tensor: Tensor)] {
        [("x0", data.x0), ("cond", data.cond), ("uncond", data.uncond), ("cond_pooled", data.condPooled),
         ("time_ids", data.timeIds), ("uncond_pooled", data.uncondPooled)].compactMap { name, tensor in tensor.map { (name, $0) } }
    }

    /// Writes `data` as a data file (formats/training-data.md) that `--data` reads back as it is.
    static func writeCache(_ data: TrainingData, to path: String) throws {
        let tensors = Self.tensors(data).map { (name: $0.name, shape: $0.tensor.shape, values: $0.tensor.data) }
        let prompts = JSONWriter.compact(.array(data.prompts.map { .string($0) }))
        try SafetensorsWriter.writeFloats(tensors, metadata: Metadata([("dmsurgery.prompts", prompts)]), to: path)
    }

    /// The sha256 of data made in memory: each tensor's name, shape and float32 bytes, in order.
    static func digest(_ data: TrainingData) -> String {
        var hasher = SHA256()
        for (name, tensor) in tensors(data) {
            hasher.update(data: Data((name + "\(tensor.shape)").utf8))
            tensor.data.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
