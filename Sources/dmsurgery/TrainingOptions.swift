import ArgumentParser
import Diffusion
import Foundation
import TensorFormats
import TensorMath
import Training
import UNet
#if canImport(Glibc)
import Glibc
#endif

/// Options every training subcommand (finetune, erase, unlearn) shares.
struct TrainingOptions: ParsableArguments {
    @Option(help: "Iterations to run (unlearn: outer iterations).")
    var steps = 1000

    @Option(help: "Items per batch.")
    var batch = 8

    @Option(help: "AdamW learning rate (unlearn: the lower level's).")
    var lr: Float = 1e-4

    @Option(help: "Linear warmup over this many updates, then constant.")
    var warmup = 0

    @Option(name: .customLong("weight-decay"), help: "AdamW decoupled weight decay.")
    var weightDecay: Float = 1e-2

    @Option(help: "Keep an exponential moving average of the weights with this decay and write it instead of the raw weights.")
    var ema: Float?

    @Option(name: .customLong("max-grad-norm"), help: "Clip the global gradient norm to this value (0 disables).")
    var maxGradNorm: Float = 1

    @Option(help: "Seed of every random draw (batches, timesteps, noise, dropout, generated forget images).")
    var seed: UInt64 = 0

    @Option(help: "scheduler_config.json to train with instead of the model's.")
    var scheduler: String?

    @Option(help: ArgumentHelp("Append one JSON line per iteration (step, losses, lr, seconds) to this file.", valueName: "file"))
    var log: String?

    @Option(name: .customLong("checkpoint-every"), help: "Write the resumable state every N iterations (and at the end).")
    var checkpointEvery: Int?

    @Flag(help: "Continue from the resumable state; the result is the same bytes as an uninterrupted run.")
    var resume = false

    @Option(help: ArgumentHelp("Resumable state file (default OUT.state.safetensors; required when OUT is -).", valueName: "file"))
    var state: String?

    func validate(output: String) throws {
        guard steps >= 1, batch >= 1 else { throw ValidationError("--steps and --batch must be at least 1") }
        guard lr > 0, warmup >= 0, weightDecay >= 0, maxGradNorm >= 0 else {
            throw ValidationError("--lr must be positive; --warmup, --weight-decay and --max-grad-norm not negative")
        }
        if let ema, !(ema > 0 && ema < 1) { throw ValidationError("--ema must be between 0 and 1 (exclusive)") }
        if let checkpointEvery, checkpointEvery < 1 { throw ValidationError("--checkpoint-every must be at least 1") }
        try checkBatch(ranks: DataParallel.announcedSize)
        if statePath(output: output) == nil && (resume || checkpointEvery != nil) {
            throw ValidationError("--resume and --checkpoint-every need --state FILE when OUT is standard output")
        }
    }

    /// Each of the MPI ranks takes an equal share of the global batch.
    func checkBatch(ranks: Int) throws {
        guard batch % ranks == 0 else {
            throw ValidationError("--batch \(batch) is the global batch: it must be a multiple of the \(ranks) MPI ranks")
        }
    }

    /// Joins the MPI ranks when mpirun started this process (a no-op otherwise); first thing a
    /// training command does, so that an error on any rank aborts them all.
    func joinRanks() throws {
        let parallel = try DataParallel.join()
        do { try checkBatch(ranks: parallel.size) } catch {
            printError("\(error)")
            DataParallel.abortIfJoined(64)
        }
    }

    /// Where the resumable state lives.
    func statePath(output: String) -> String? { state ?? (output == "-" ? nil : output + ".state.safetensors") }

    func optimizer(learningRate: Float? = nil, warmup: Int? = nil) -> ModelOptimizer {
        ModelOptimizer(learningRate: learningRate ?? lr, warmup: warmup ?? self.warmup, weightDecay: weightDecay,
                       maxGradNorm: maxGradNorm > 0 ? maxGradNorm : nil)
    }

    /// The options that shape the weights (not --steps, so a finished run can be extended with --resume).
    var fingerprint: String {
        "batch=\(batch) lr=\(lr) warmup=\(warmup) weight-decay=\(weightDecay) ema=\(ema.map { "\($0)" } ?? "none") "
            + "max-grad-norm=\(maxGradNorm) seed=\(seed)"
    }
}

/// The lower-level loss options (finetune, unlearn).
struct LowerLevelOptions: ParsableArguments {
    @Option(name: .customLong("w-diff"), help: "Weight of the denoising loss L_diff.")
    var wDiff: Float = 1

    @Option(name: .customLong("w-out"), help: "Weight of output distillation L_outKD (with a teacher).")
    var wOut: Float = 2

    @Option(name: .customLong("w-feat"), help: "Weight of feature distillation L_featKD over every block output (with a teacher).")
    var wFeat: Float = 0.1

    @Option(name: .customLong("min-snr-gamma"), help: "Weight L_diff per sample by min-SNR-gamma (the paper uses 5).")
    var minSnrGamma: Float?

    @Option(name: .customLong("uncond-prob"), help: "Replace a prompt by the data file's uncond with this probability (classifier-free-guidance dropout).")
    var uncondProb: Float = 0

    func validate() throws {
        guard wDiff >= 0, wOut >= 0, wFeat >= 0 else { throw ValidationError("--w-diff, --w-out and --w-feat must not be negative") }
        if let minSnrGamma, minSnrGamma <= 0 { throw ValidationError("--min-snr-gamma must be positive") }
        guard uncondProb >= 0 && uncondProb <= 1 else { throw ValidationError("--uncond-prob must be in [0, 1]") }
    }

    /// Reads the lower level's data file; CFG dropout on a conditional model needs its empty prompt.
    func loadData(_ path: String, model: UNet2D, input: InputOptions) throws -> TrainingData {
        let data = try loadTrainingData(path, role: .data, model: model, input: input)
        if uncondProb > 0 && model.contextDim != nil && data.uncond == nil {
            throw TensorFormatError(.missingTensor, "--uncond-prob needs the empty prompt uncond [S,D]", file: path, tensor: "uncond")
        }
        return data
    }

    func objective(_ schedule: NoiseSchedule) -> LowerLevelObjective {
        var o = LowerLevelObjective(schedule: schedule)
        o.diffusionWeight = wDiff
        o.outputWeight = wOut
        o.featureWeight = wFeat
        o.minSNRGamma = minSnrGamma
        o.uncondProbability = uncondProb
        return o
    }

    var fingerprint: String {
        "w-diff=\(wDiff) w-out=\(wOut) w-feat=\(wFeat) min-snr-gamma=\(minSnrGamma.map { "\($0)" } ?? "none") uncond-prob=\(uncondProb)"
    }
}

extension ErasureMethod: ExpressibleByArgument {}

/// The upper-level options (erase, unlearn).
struct ForgetOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Forget file: cond [M,S,D] and uncond [S,D]; optional x0 [M,C,H,W] and anchor [M,S,D] (formats/training-data.md).", valueName: "file"))
    var forget: String

    @Option(help: "How the concept is removed: esd (teacher-guided ESD) or ablation (toward the anchor prompts).")
    var method: ErasureMethod = .esd

    @Option(help: "ESD guidance strength eta.")
    var eta: Float = 1

    @Option(name: .customLong("forget-sample-steps"), help: "DDIM steps for the teacher's forget images when the forget file has no x0.")
    var forgetSampleSteps = 25

    @Option(name: .customLong("forget-guidance"), help: "Guidance scale of those images.")
    var forgetGuidance: Float = 5

    func validate() throws {
        guard forgetSampleSteps >= 1 else { throw ValidationError("--forget-sample-steps must be at least 1") }
    }

    func objective(_ schedule: NoiseSchedule) -> ConceptObjective {
        var o = ConceptObjective(schedule: schedule)
        o.method = method
        o.eta = eta
        return o
    }

    var fingerprint: String {
        "method=\(method.rawValue) eta=\(eta) forget-sample-steps=\(forgetSampleSteps) forget-guidance=\(forgetGuidance)"
    }

    /// Reads the forget file; without x0 the teacher draws the forget images (seeded by --seed).
    func load(_ input: InputOptions, model: UNet2D, teacher: UNet2D, scheduler: SchedulerConfig, seed: UInt64,
              sampleShape: [Int], quiet: Bool) throws -> TrainingData {
        var data = try loadTrainingData(forget, role: .forget, model: model, input: input)
        if method == .ablation && data.anchor == nil {
            throw TensorFormatError(.missingTensor, "--method ablation needs the anchor prompts anchor [M,S,D]", file: forget, tensor: "anchor")
        }
        if data.x0 == nil {
            note("drawing \(data.count) forget images with the teacher (\(forgetSampleSteps) DDIM steps, guidance \(forgetGuidance))", quiet: quiet)
            data.x0 = try generateForgetImages(teacher: teacher, forget: data, scheduler: scheduler, sampleShape: sampleShape,
                                               steps: forgetSampleSteps, guidance: forgetGuidance, seed: seed)
        }
        return data
    }
}

/// A model to train with what its output must carry over: the config text and the source metadata.
struct TrainableModel {
    var unet: UNet2D
    var configJSON: String
    var metadata: Metadata
}

/// Loads a checkpoint for training (any format `loadUNet` reads; `-` is standard input).
func loadTrainable(_ path: String, input: InputOptions) throws -> TrainableModel {
    do {
        let checkpoint = try openCheckpoint(path, input, randomAccess: true)
        let unet = try UNet2D(checkpoint: checkpoint)
        guard let configJSON = checkpoint.configJSON else {
            throw TensorFormatError(.invalidConfig, "no diffusers config to carry into the output", file: path)
        }
        var metadata = checkpoint.metadata ?? Metadata()
        metadata[MetadataKey.config] = nil
        metadata[trainingMetadataKey] = nil
        return TrainableModel(unet: unet, configJSON: configJSON, metadata: metadata)
    } catch let error as UNetError {
        throw located(error, file: path)
    }
}

/// A frozen model (teacher).
func loadFrozen(_ path: String, input: InputOptions) throws -> UNet2D {
    try loadTrainable(path, input: input).unet
}

func loadTrainingData(_ path: String, role: TrainingData.Role, model: UNet2D, input: InputOptions) throws -> TrainingData {
    try TrainingData(checkpoint: try openCheckpoint(path, input, randomAccess: true), file: path, role: role, config: model.config)
}

/// The image shape a model is trained on: the data's x0 items, else the config's sample size.
func sampleShape(_ model: UNet2D, data: TrainingData?) -> [Int] {
    if let x0 = data?.x0 { return Array(x0.shape.dropFirst()) }
    let side = model.config.sampleSize ?? 32
    return [model.config.inChannels, side, side]
}

/// The teacher and student must produce the same block outputs for distillation.
func checkCompatible(student: UNet2D, teacher: UNet2D, teacherPath: String) throws {
    guard student.blockOutputs == teacher.blockOutputs, student.config.blockOutChannels == teacher.config.blockOutChannels,
          student.config.inChannels == teacher.config.inChannels,
          student.config.outChannels == teacher.config.outChannels, student.contextDim == teacher.contextDim else {
        throw TensorFormatError(.invalidConfig, "the teacher's blocks, channels or cross_attention_dim differ from the student's", file: teacherPath)
    }
}

let trainingMetadataKey = "dmsurgery.training"

/// Set from a signal handler while the training loop runs; the loop saves its state and stops.
final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var armed = false
    private var received: Int32?
    private var checkpointSignal: DispatchSourceSignal?

    /// Installs the handler: while armed, SIGINT/SIGTERM/SIGHUP only set the request.
    init() {
        TemporaryFiles.installSignalCleanup { [self] sig in
            lock.lock(); defer { lock.unlock() }
            guard armed else { return false }
            received = sig
            return true
        }
    }

    var signal: Int32? {
        lock.lock(); defer { lock.unlock() }
        return received
    }

    /// Under mpirun, SIGUSR1 too: mpirun forwards it to every rank as is, whereas it turns SIGINT and
    /// SIGTERM into a kill one second later, too soon for a long step to end and its state to be saved.
    func listenForSIGUSR1() {
        Glibc.signal(SIGUSR1, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGUSR1, queue: .global())
        source.setEventHandler { [self] in
            lock.lock(); defer { lock.unlock() }
            if armed { received = SIGUSR1 }
        }
        source.resume()
        checkpointSignal = source
    }

    func arm(_ on: Bool) {
        lock.lock(); defer { lock.unlock() }
        armed = on
    }
}

/// Runs a training method with the shared options: progress, log, checkpoints, resume, signals, and
/// the output checkpoint with `dmsurgery.training` metadata.
func train<M: TrainingMethod>(_ method: inout M, command: String, options: TrainingOptions, fingerprint: String,
                              source: TrainableModel, output: String, force: Bool, quiet: Bool, stop: StopRequest) throws {
    let statePath = options.statePath(output: output)
    if options.resume, let statePath, !FileManager.default.fileExists(atPath: statePath) {
        throw TensorFormatError(.notFound, "no resumable state (run with --checkpoint-every, or interrupt a run, first)", file: statePath)
    }
    let parallel = DataParallel.current ?? .solo
    let quiet = quiet || !parallel.isRoot
    var loop = TrainingLoop(steps: options.steps, seed: options.seed, emaDecay: options.ema, statePath: statePath,
                            checkpointEvery: options.checkpointEvery, fingerprint: "\(command) \(fingerprint)")
    loop.parallel = parallel
    if parallel.size > 1 { stop.listenForSIGUSR1() }
    let log = parallel.isRoot ? try options.log.map { try TrainingLog(path: $0) } : nil
    let bar = ProgressBar(command, total: options.steps, quiet: quiet)
    stop.arm(true)
    let outcome = try loop.run(&method, resume: options.resume, shouldStop: { stop.signal != nil }) { record in
        try log?.write(record)
        bar.update(steps: record.step, detail: record.report.losses.map { "\($0.name) \(formatNumber($0.value))" }.joined(separator: " "))
    }
    stop.arm(false)
    bar.finish()
    switch outcome {
    case .interrupted(let step):
        note(statePath.map { "interrupted at step \(step); state saved to \($0), continue with --resume" } ?? "interrupted at step \(step)", quiet: quiet)
        TemporaryFiles.removeAll()
        parallel.finish()
        throw ExitCode(128 + (stop.signal ?? SIGINT))
    case .finished(let model, let last):
        // Every rank has finished before the root writes; the others write nothing.
        parallel.barrier()
        guard parallel.isRoot else { return parallel.finish() }
        var metadata = source.metadata
        let losses: [JSONMember] = (last?.losses ?? []).map {
            JSONMember($0.name, $0.value.isFinite ? .number("\($0.value)") : .string(formatNumber($0.value)))
        }
        metadata[trainingMetadataKey] = JSONWriter.compact(.object([
            JSONMember("command", .string(command)), JSONMember("steps", .number(String(options.steps))),
            JSONMember("seed", .number(String(options.seed))), JSONMember("options", .string(fingerprint)),
            JSONMember("losses", .object(losses)),
        ]))
        try model.write(to: output, configJSON: source.configJSON, metadata: metadata, force: force)
        let summary = (last?.losses ?? []).map { "\($0.name) \(formatNumber($0.value))" }.joined(separator: ", ")
        note("\(command): \(options.steps) steps, \(summary); wrote \(output)", quiet: quiet)
        parallel.finish()
    }
}

/// Refuses binary output to a terminal before any training time is spent.
func checkOutputTarget(_ output: String, force: Bool) throws {
    if output == "-" && !force && isatty(STDOUT_FILENO) == 1 {
        throw TensorFormatError(.terminalOutput, "refusing to write a checkpoint to a terminal (use --force or redirect)", file: "-")
    }
}
