import Diffusion
import Foundation
import TensorFormats
import Training
import UNet

/// What a trained model's output carries over from its source: the config text and the source
/// metadata; and the source's sha256 (`InputDigest`) for the run description. Kept apart from the
/// weights so that the training method holds the only copy of the source model.
struct ModelOrigin {
    var configJSON: String
    var metadata: Metadata
    var sha256: String
}

/// The metadata key of the training record in a trained checkpoint (formats/metadata.md).
let trainingMetadataKey = "dmsurgery.training"

/// Loads a checkpoint for training (any format `UNet2D(checkpoint:)` reads; `-` is standard input).
/// A frozen model (the teacher) passes `frozen: nil` to let `TrainingMemoryPlan` pick its storage
/// from the file, and is told which one was picked when it is not float32.
func loadTrainable(_ path: String, open: OpenOptions, frozen: Bool = false,
                   quiet: Bool = true) throws -> (unet: UNet2D, origin: ModelOrigin) {
    do {
        let checkpoint = try openCheckpoint(path, open, randomAccess: true)
        let storage = frozen ? TrainingMemoryPlan.teacherStorage(for: checkpoint) : .float32
        let unet = try UNet2D(checkpoint: checkpoint, frozen: storage)
        if storage == .mapped {
            note("reading the teacher's \(unet.parameterCount) weights from its mapped file at each use, computing in float32", quiet: quiet)
        } else if storage != .float32 {
            note("holding the teacher's \(unet.parameterCount) weights as \(storage.rawValue), computing in float32", quiet: quiet)
        }
        guard let configJSON = checkpoint.configJSON else {
            throw TensorFormatError(.invalidConfig, "no diffusers config to carry into the output", file: path)
        }
        var metadata = checkpoint.metadata ?? Metadata()
        metadata[MetadataKey.config] = nil
        metadata[trainingMetadataKey] = nil
        return (unet, ModelOrigin(configJSON: configJSON, metadata: metadata,
                                  sha256: try InputDigest.sha256(path, checkpoint: checkpoint)))
    } catch let error as UNetError {
        throw located(error, file: path)
    }
}

/// Fresh weights of a diffusers config.json, seeded.
func initialModel(config path: String, seed: UInt64) throws -> (unet: UNet2D, origin: ModelOrigin) {
    let text = try MappedFile.text(of: path, what: "the config")
    do {
        return (try UNet2D(config: try UNetConfig(json: text), randomSeed: seed),
                ModelOrigin(configJSON: text, metadata: Metadata(), sha256: try InputDigest.sha256(file: path)))
    } catch let error as UNetError { throw located(error, file: path) }
}

/// A data or forget file with its sha256.
func loadTrainingData(_ path: String, role: TrainingData.Role, model: UNet2D, open: OpenOptions) throws -> (TrainingData, String) {
    let checkpoint = try openCheckpoint(path, open, randomAccess: true)
    let data = try TrainingData(checkpoint: checkpoint, file: path, role: role, config: model.config)
    return (data, try InputDigest.sha256(path, checkpoint: checkpoint))
}

/// The image shape a model is trained on: the data's x0 items, else the config's sample size.
func sampleShape(_ model: UNet2D, data: TrainingData?) -> [Int] {
    if let x0 = data?.x0 { return Array(x0.shape.dropFirst()) }
    let side = model.config.sampleSize ?? 32
    return [model.config.inChannels, side, side]
}

/// The student must be the teacher's shape, or a depth cut of it (formats/depth.md): its stages the
/// teacher's first ones, with the same widths; block outputs are paired by `BlockAlignment`.
func checkCompatible(student: UNet2D, teacher: UNet2D, teacherPath: String) throws {
    let widths = student.config.blockOutChannels
    guard widths.count <= teacher.config.blockOutChannels.count, Array(teacher.config.blockOutChannels.prefix(widths.count)) == widths,
          student.config.inChannels == teacher.config.inChannels,
          student.config.outChannels == teacher.config.outChannels, student.contextDim == teacher.contextDim else {
        throw TensorFormatError(.invalidConfig, "the teacher's blocks, channels or cross_attention_dim differ from the student's", file: teacherPath)
    }
}

extension LowerLevelSettings {
    /// Reads the lower level's data file; CFG dropout on a conditional model needs its empty prompt.
    func loadData(_ path: String, model: UNet2D, open: OpenOptions) throws -> (TrainingData, String) {
        let (data, sha256) = try loadTrainingData(path, role: .data, model: model, open: open)
        if uncondProb > 0 && model.contextDim != nil && data.uncond == nil {
            throw TensorFormatError(.missingTensor, "--uncond-prob needs the empty prompt uncond [S,D]", file: path, tensor: "uncond")
        }
        if uncondProb > 0 && model.config.textTime != nil && data.uncondPooled == nil {
            throw TensorFormatError(.missingTensor, "--uncond-prob on a text_time (SDXL) model needs the empty prompt's pooled embedding uncond_pooled [P]",
                                    file: path, tensor: "uncond_pooled")
        }
        return (data, sha256)
    }
}

/// An input's record in the run description: a file's sha256, or the digest of prompts.
struct InputRecord {
    var data: TrainingData
    var sha256: String
    var prompts: String?
}

extension ForgetSettings {
    /// Reads the forget file, or encodes `prompts` with the teacher pipeline's text encoder (a forget file
    /// of those prompts without x0); without x0 the teacher draws the forget images (seeded by --seed).
    func load(_ open: OpenOptions, model: UNet2D, teacher: UNet2D, teacherPath: String, scheduler: SchedulerConfig, seed: UInt64,
              sampleShape: [Int], quiet: Bool) throws -> InputRecord {
        var record: InputRecord
        if let forget {
            let (data, sha256) = try loadTrainingData(forget, role: .forget, model: model, open: open)
            record = InputRecord(data: data, sha256: sha256)
        } else {
            let data = try PromptData.encode(prompts, pipeline: teacherPath, model: model, source: "--forget-prompt",
                                             latentSize: (sampleShape[1], sampleShape[2]))
            record = InputRecord(data: data, sha256: PromptData.digest(data), prompts: PromptData.digest(prompts))
        }
        if concept.method == .ablation && record.data.anchor == nil {
            throw TensorFormatError(.missingTensor, "--method ablation needs the anchor prompts anchor [M,S,D] of a forget file",
                                    file: forget ?? "--forget-prompt", tensor: "anchor")
        }
        if record.data.x0 == nil {
            note("drawing \(record.data.count) forget images with the teacher (\(concept.forgetSampleSteps) DDIM steps, guidance \(concept.forgetGuidance))", quiet: quiet)
            record.data.x0 = try generateForgetImages(teacher: teacher, forget: record.data, scheduler: scheduler, sampleShape: sampleShape,
                                                      steps: concept.forgetSampleSteps, guidance: concept.forgetGuidance, seed: seed)
        }
        return record
    }
}

extension RetainSettings {
    /// The lower level's data: the data file, or data made from prompts or pictures with the teacher
    /// pipeline (written to the cache when there is one, as a data file `--data` reads back).
    func load(_ open: OpenOptions, lower: LowerLevelSettings, model: UNet2D, teacher: (unet: UNet2D, path: String)?,
              scheduler: SchedulerConfig, seed: UInt64, output: OutputSettings) throws -> InputRecord {
        let data: TrainingData
        switch source {
        case .data(let path):
            let (data, sha256) = try lower.loadData(path, model: model, open: open)
            return InputRecord(data: data, sha256: sha256)
        case .prompts(let path):
            guard let teacher else { throw TensorFormatError(.invalidArgument, "--retain-prompts needs --teacher PIPELINE", file: path) }
            data = try PromptData.teacherSamples(file: path, pipeline: teacher.path, teacher: teacher.unet, model: model,
                                                 scheduler: scheduler, settings: self, seed: seed, quiet: output.quiet)
        case .images(let path):
            guard let teacher else { throw TensorFormatError(.invalidArgument, "--retain-images needs --teacher PIPELINE", file: path) }
            data = try PromptData.images(directory: path, pipeline: teacher.path, model: model)
        }
        if let cache = cachePath(output: output.path), DataParallel.current?.isRoot ?? true {
            try PromptData.writeCache(data, to: cache)
            note("wrote the retain data (\(data.count) items) to \(cache)", quiet: output.quiet)
        }
        return InputRecord(data: data, sha256: PromptData.digest(data), prompts: PromptData.digest(data.prompts))
    }
}
