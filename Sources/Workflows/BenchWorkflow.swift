import CLIP
import Diffusion
import Foundation
import TensorFormats
import TensorMath
import Training
import UNet
import VAE

/// What a UNet benchmark runs on: a model or a config built with random weights, at a size.
public struct BenchSubjectSettings: Sendable {
    public var model: String?
    public var config: String?
    public var size: Int?
    public var open = OpenOptions()
    public var quiet = false

    public init(model: String?, config: String?) {
        self.model = model
        self.config = config
    }

    var name: String { model ?? config ?? "-" }
}

/// A benchmark's result, as the CLI prints it: one JSON object (`--json`) or table rows.
public struct BenchReport: Sendable {
    public var json: [JSONMember]
    public var rows: [[String]]
}

/// `bench`'s bodies: each times a part of the engine on random inputs and reports medians (or means, as
/// each subcommand's help says) with the process's peak resident memory.
public enum BenchWorkflow {
    /// UNet inference without a tape: the mean of `steps` passes after one warm-up pass.
    public static func forward(_ subject: BenchSubjectSettings, batch: Int, steps: Int, setup: EngineSetup) throws -> BenchReport {
        var unet: UNet2D
        switch try loadEngineModel(model: subject.model, config: subject.config, open: subject.open) {
        case .pixart(let dit): return try PixArtWorkflow.benchForward(dit, subject: subject, batch: batch, steps: steps, setup: setup)
        case .unet(let u): unet = u
        }
        unet.frozenWeightTransforms = WinogradWeightCache()
        let cfg = unet.config
        let side = subject.size ?? cfg.sampleSize ?? 32
        do { try unet.checkInput(batch: batch, height: side, width: side, training: false, option: "--batch or --size") } catch let error as UNetError {
            throw located(error, file: subject.name)
        }
        var rng = NormalGenerator(seed: 0)
        let x = rng.tensor([batch, cfg.inChannels, side, side])
        let context = cfg.crossAttentionDim.map { rng.tensor([batch, 77, $0]) }
        let textTime: TextTimeInputs?
        do { textTime = try cfg.textTime.map { try benchTextTime($0, batch: batch, side: side, rng: &rng) } } catch let error as UNetError {
            throw located(error, file: subject.name)
        }
        var times: [Double] = []
        for step in 0...steps {
            let seconds = try timed {
                _ = try unet(sample: x, timesteps: [Float](repeating: 500, count: batch), encoderHiddenStates: context, textTime: textTime)
            }
            if step > 0 { times.append(seconds) }
            note("pass \(step)\(step == 0 ? " (warm-up)" : ""): \(String(format: "%.3f", seconds)) s", quiet: subject.quiet)
        }
        let mean = times.reduce(0, +) / Double(times.count)
        let peak = peakResidentBytes()
        return BenchReport(
            json: [JSONMember("seconds_per_forward", .double(mean)), JSONMember("parameters", .int(unet.parameterCount)),
                   JSONMember("batch", .int(batch)), JSONMember("size", .int(side)), JSONMember("peak_rss_bytes", .int(peak))] + setup.jsonMembers,
            rows: [["seconds per forward", String(format: "%.3f", mean)], ["parameters", formatCount(unet.parameterCount)],
                   ["batch", "\(batch) x \(cfg.inChannels) x \(side) x \(side)"], ["peak resident memory", formatBytes(peak)]] + setup.tableRows)
    }

    /// Forward, backward and AdamW on random noised images (epsilon MSE), or with a teacher the
    /// distillation step of `unlearn`'s lower level; the mean of `steps` steps after one warm-up step.
    public static func trainStep(_ subject: BenchSubjectSettings, batch: Int, steps: Int, teacher: String?, setup: EngineSetup) throws -> BenchReport {
        var unet = try loadUNet(model: subject.model, config: subject.config, open: subject.open)
        let cfg = unet.config
        let side = subject.size ?? cfg.sampleSize ?? 32
        do { try unet.checkInput(batch: batch, height: side, width: side, training: true, option: "--batch or --size") } catch let error as UNetError {
            throw located(error, file: subject.name)
        }
        if let teacher {
            return try distillation(student: &unet, teacherPath: teacher, subject: subject, batch: batch, side: side, steps: steps, setup: setup)
        }
        var rng = NormalGenerator(seed: 0)
        var optimizer = AdamW(learningRate: 1e-4)
        let schedule = NoiseSchedule(SchedulerConfig())
        var timings: [StepTiming] = []
        var loss: Float = 0
        for step in 0...steps {
            let clean = rng.tensor([batch, cfg.inChannels, side, side])
            let noise = rng.tensor(clean.shape)
            let ts = rng.integers(batch, below: schedule.alphasCumprod.count)
            let context = cfg.crossAttentionDim.map { rng.tensor([batch, 77, $0]) }
            let (l, t) = try denoisingTrainStep(model: &unet, optimizer: &optimizer, schedule: schedule, clean: clean,
                                                noise: noise, timesteps: ts, encoderHiddenStates: context)
            loss = l
            if step > 0 { timings.append(t) }
            note("step \(step)\(step == 0 ? " (warm-up)" : ""): \(String(format: "%.3f", t.total)) s, loss \(l)", quiet: subject.quiet)
        }
        let n = Double(timings.count)
        let mean = StepTiming(forward: timings.map(\.forward).reduce(0, +) / n,
                              backward: timings.map(\.backward).reduce(0, +) / n,
                              update: timings.map(\.update).reduce(0, +) / n)
        // Nominal work: forward + backward (input and weight gradients) = 3 x forward.
        let flops = 3 * unet.forwardFLOPs(batch: batch, height: side, width: side)
        let gflops = flops / mean.total / 1e9
        return BenchReport(
            json: [JSONMember("seconds_per_step", .double(mean.total)), JSONMember("forward", .double(mean.forward)),
                   JSONMember("backward", .double(mean.backward)), JSONMember("update", .double(mean.update)),
                   JSONMember("parameters", .int(unet.parameterCount)), JSONMember("batch", .int(batch)),
                   JSONMember("size", .int(side)), JSONMember("threads", .int(ComputeThreads.cores)),
                   JSONMember("steps", .int(timings.count)), JSONMember("loss", .double(Double(loss))),
                   JSONMember("nominal_gflop", .double(flops / 1e9)), JSONMember("gflops", .double(gflops))] + setup.jsonMembers,
            rows: [["seconds per step", String(format: "%.3f", mean.total)], ["forward", String(format: "%.3f", mean.forward)],
                   ["backward", String(format: "%.3f", mean.backward)], ["update", String(format: "%.3f", mean.update)],
                   ["parameters", formatCount(unet.parameterCount)], ["batch", "\(batch) x \(cfg.inChannels) x \(side) x \(side)"],
                   ["nominal work", String(format: "%.1f GFLOP (%.1f GFLOP/s)", flops / 1e9, gflops)]] + setup.tableRows)
    }

    /// The `--teacher` form: `distillationTrainStep` per step, the teacher's 3x3 weight transforms cached.
    private static func distillation(student: inout UNet2D, teacherPath: String, subject: BenchSubjectSettings, batch: Int, side: Int,
                                     steps: Int, setup: EngineSetup) throws -> BenchReport {
        var teacherModel = try loadUNet(model: teacherPath, open: subject.open)
        teacherModel.frozenWeightTransforms = WinogradWeightCache()
        let (s, t) = (student.config, teacherModel.config)
        guard s.inChannels == t.inChannels, s.outChannels == t.outChannels, s.crossAttentionDim == t.crossAttentionDim else {
            throw UsageError("--teacher \(teacherPath) takes other inputs or outputs than --model (channels \(t.inChannels) -> \(t.outChannels), context \(t.crossAttentionDim.map(String.init) ?? "none"))")
        }
        do { try teacherModel.checkInput(batch: batch, height: side, width: side, training: false, option: "--batch or --size") } catch let error as UNetError {
            throw located(error, file: teacherPath)
        }
        var rng = NormalGenerator(seed: 0)
        var optimizer = AdamW(learningRate: 1e-4)
        let objective = LowerLevelObjective(schedule: NoiseSchedule(SchedulerConfig()))
        var timings: [DistillationTiming] = []
        var loss: Float = 0
        for step in 0...steps {
            let (l, t) = try distillationTrainStep(student: &student, teacher: teacherModel, optimizer: &optimizer,
                                                   objective: objective, batch: batch, side: side, rng: &rng)
            loss = l
            if step > 0 { timings.append(t) }
            note("step \(step)\(step == 0 ? " (warm-up)" : ""): \(String(format: "%.3f", t.total)) s, L_ft \(l)", quiet: subject.quiet)
        }
        let n = Double(timings.count)
        let mean = DistillationTiming(teacher: timings.map(\.teacher).reduce(0, +) / n,
                                      student: timings.map(\.student).reduce(0, +) / n,
                                      update: timings.map(\.update).reduce(0, +) / n)
        let peak = peakResidentBytes()
        return BenchReport(
            json: [JSONMember("seconds_per_step", .double(mean.total)), JSONMember("teacher", .double(mean.teacher)),
                   JSONMember("student", .double(mean.student)), JSONMember("update", .double(mean.update)),
                   JSONMember("parameters", .int(student.parameterCount)),
                   JSONMember("teacher_parameters", .int(teacherModel.parameterCount)), JSONMember("batch", .int(batch)),
                   JSONMember("size", .int(side)), JSONMember("steps", .int(timings.count)),
                   JSONMember("loss", .double(Double(loss))), JSONMember("peak_rss_bytes", .int(peak))] + setup.jsonMembers,
            rows: [["seconds per step", String(format: "%.3f", mean.total)], ["teacher forward", String(format: "%.3f", mean.teacher)],
                   ["student forward + backward", String(format: "%.3f", mean.student)], ["update", String(format: "%.3f", mean.update)],
                   ["parameters", "\(formatCount(student.parameterCount)) (teacher \(formatCount(teacherModel.parameterCount)))"],
                   ["batch", "\(batch) x \(student.config.inChannels) x \(side) x \(side)"],
                   ["peak resident memory", formatBytes(peak)]] + setup.tableRows)
    }

    /// A CLIP text encoder forward on `batch` prompts of the tokenizer length: the median of `steps` passes.
    public static func textEncoder(model: String, batch: Int, steps: Int, quiet: Bool) throws -> BenchReport {
        let encoder = try CLIPTextModel(path: PipelineParts(model).part("text_encoder") ?? model)
        let length = min(77, encoder.config.maxPositions)
        let vocabulary = Int32(encoder.config.vocabularySize)
        let ids = (0..<batch).map { b in (0..<length).map { Int32((b * 7919 + $0 * 104_729) % Int(vocabulary)) } }
        let median = try medianSeconds(steps: steps, quiet: quiet) { _ = try encoder.forward(ids) }
        return medianReport(median, shape: "\(batch) x \(length) tokens")
    }

    /// An AutoencoderKL decode (or encode) of one `size` x `size` image: the median of `steps` passes.
    public static func vae(model: String, size: Int, encode: Bool, steps: Int, quiet: Bool) throws -> BenchReport {
        let vae = try AutoencoderKL(path: PipelineParts(model).vae)
        var rng = NormalGenerator(seed: 0)
        let f = vae.config.downscale
        let median: Double
        if encode {
            let images = rng.tensor([1, vae.config.inChannels, size, size])
            median = try medianSeconds(steps: steps, quiet: quiet) { _ = try vae.encode(images) }
        } else {
            let latents = rng.tensor([1, vae.config.latentChannels, size / f, size / f])
            median = try medianSeconds(steps: steps, quiet: quiet) { _ = try vae.decode(latents) }
        }
        return medianReport(median, shape: "1 x \(size) x \(size) \(encode ? "encode" : "decode")")
    }

    private static func medianReport(_ median: Double, shape: String) -> BenchReport {
        let peak = peakResidentBytes()
        return BenchReport(json: [JSONMember("median_seconds", .double(median)), JSONMember("peak_rss_bytes", .int(peak))],
                           rows: [["median seconds", String(format: "%.3f", median)], ["input", shape], ["peak resident memory", formatBytes(peak)]])
    }

    /// Median seconds of `steps` timed runs of `body` after one warm-up run.
    static func medianSeconds(steps: Int, quiet: Bool, _ body: () throws -> Void) rethrows -> Double {
        var times: [Double] = []
        for step in 0...steps {
            let seconds = try timed(body)
            if step > 0 { times.append(seconds) }
            note("pass \(step)\(step == 0 ? " (warm-up)" : ""): \(String(format: "%.3f", seconds)) s", quiet: quiet)
        }
        times.sort()
        return times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
    }

    private static func timed(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now()
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }
}

/// The process's peak resident set (getrusage; Linux reports kilobytes).
public func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
}

/// The compute configuration a timing was taken with: OpenBLAS's core (and whether the engine corrected
/// the library's choice), TensorMath's kernel set and the CPU's vector features, for --json, the table
/// and --verbose.
public struct EngineSetup: Sendable {
    let blas = BLASCore.current
    let kernels = KernelSet.active
    let features = CPUFeatures.host

    public init() {}

    var blasDescription: String {
        switch blas.origin {
        case .engine: return "\(blas.active) (library chose \(blas.replaced ?? "?"), corrected)"
        case .user: return "\(blas.active) (OPENBLAS_CORETYPE)"
        case .libraryFixed: return "\(blas.active) (lesser than this CPU supports; library cannot switch)"
        case .library: return blas.active
        }
    }

    var jsonMembers: [JSONMember] {
        [JSONMember("blas_core", .string(blas.active)), JSONMember("blas_core_origin", .string(blas.origin.rawValue)),
         JSONMember("blas_core_replaced", blas.replaced.map { .string($0) } ?? .null),
         JSONMember("kernels", .string(kernels.rawValue)),
         JSONMember("cpu_features", .array(features.names.map { .string($0) }))]
    }

    var tableRows: [[String]] { [["BLAS core", blasDescription], ["kernel set", kernelDescription]] }

    var kernelDescription: String {
        let forced = ProcessInfo.processInfo.environment[KernelSet.environmentVariable]
        return kernels.rawValue + (forced.map { " (\(KernelSet.environmentVariable)=\($0))" } ?? "")
    }

    /// With --verbose, says on stderr which BLAS core and kernel set run, and why.
    public func describe(verbose: Bool, quiet: Bool) {
        guard verbose else { return }
        note("BLAS core: \(blasDescription); kernel set: \(kernelDescription); CPU features: \(features.names.joined(separator: " "))", quiet: quiet)
    }
}
