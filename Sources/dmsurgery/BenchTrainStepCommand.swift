import ArgumentParser
import Diffusion
import Foundation
import TensorFormats
import TensorMath
import Training
import UNet
import Workflows

struct TrainStepBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-step",
        abstract: "Time forward, backward and an AdamW update of a UNet on random data.",
        discussion: """
        Inputs are random at the config's sample_size (or --size): images noised at random timesteps of a \
        DDPM linear schedule, an epsilon-prediction MSE loss, and, for conditional models, random encoder \
        hidden states of 77 tokens. With --config instead of --model the weights are freshly initialised. \
        The first step is a warm-up and is not counted. --json prints one object with seconds_per_step, \
        forward, backward, update, parameters, batch, size, threads, steps, loss, nominal_gflop (3x the \
        forward's multiply-adds x 2, Winograd savings not subtracted) and gflops (nominal work per second).

        With --teacher, each step is `unlearn`'s lower level against that frozen teacher instead: the \
        teacher's forward, the student's L_ft = L_diff + 2 L_outKD + 0.1 L_featKD with its backward, and \
        AdamW; --json then prints seconds_per_step, teacher, student (forward + backward), update, \
        parameters, teacher_parameters, batch, size, steps, loss and peak_rss_bytes.

        Exit status: 0 success, 2 invalid or unreadable input, 64 usage error.
        """
    )

    @OptionGroup var subject: BenchSubject

    @Option(help: "Batch size.")
    var batch = 8

    @Option(help: "Timed steps (after one warm-up step).")
    var steps = 3

    @Option(help: "A frozen dense teacher (diffusers folder or checkpoint): time the distillation step of a pruned --model.")
    var teacher: String?

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard batch >= 1, steps >= 1 else { throw ValidationError("--batch and --steps must be at least 1") }
    }

    func run() throws {
        let setup = EngineSetup()
        setup.describe(verbose: subject.verbose, quiet: common.quiet)
        var unet = try loadUNet(model: subject.model, config: subject.config, input: subject.input)
        let cfg = unet.config
        let side = subject.size ?? cfg.sampleSize ?? 32
        do { try unet.checkInput(batch: batch, height: side, width: side, training: true, option: "--batch or --size") } catch let error as UNetError {
            throw located(error, file: subject.model ?? subject.config ?? "-")
        }
        if let teacher {
            return try runDistillation(student: &unet, teacherPath: teacher, side: side, setup: setup)
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
            note("step \(step)\(step == 0 ? " (warm-up)" : ""): \(String(format: "%.3f", t.total)) s, loss \(l)", quiet: common.quiet)
        }
        let n = Double(timings.count)
        let mean = StepTiming(forward: timings.map(\.forward).reduce(0, +) / n,
                              backward: timings.map(\.backward).reduce(0, +) / n,
                              update: timings.map(\.update).reduce(0, +) / n)
        // Nominal work: forward + backward (input and weight gradients) = 3 x forward.
        let flops = 3 * unet.forwardFLOPs(batch: batch, height: side, width: side)
        let gflops = flops / mean.total / 1e9
        if subject.json {
            try emit(JSONWriter.pretty(.object([
                JSONMember("seconds_per_step", .double(mean.total)), JSONMember("forward", .double(mean.forward)),
                JSONMember("backward", .double(mean.backward)), JSONMember("update", .double(mean.update)),
                JSONMember("parameters", .int(unet.parameterCount)), JSONMember("batch", .int(batch)),
                JSONMember("size", .int(side)), JSONMember("threads", .int(ComputeThreads.cores)),
                JSONMember("steps", .int(timings.count)), JSONMember("loss", .double(Double(loss))),
                JSONMember("nominal_gflop", .double(flops / 1e9)), JSONMember("gflops", .double(gflops)),
            ] + setup.jsonMembers)))
        } else {
            try emit(table([["seconds per step", String(format: "%.3f", mean.total)],
                        ["forward", String(format: "%.3f", mean.forward)],
                        ["backward", String(format: "%.3f", mean.backward)],
                        ["update", String(format: "%.3f", mean.update)],
                        ["parameters", formatCount(unet.parameterCount)],
                        ["batch", "\(batch) x \(cfg.inChannels) x \(side) x \(side)"],
                        ["nominal work", String(format: "%.1f GFLOP (%.1f GFLOP/s)", flops / 1e9, gflops)]] + setup.tableRows))
        }
    }
}

extension TrainStepBench {
    /// The `--teacher` form: `distillationTrainStep` per step, the teacher's 3x3 weight transforms cached.
    func runDistillation(student: inout UNet2D, teacherPath: String, side: Int, setup: EngineSetup) throws {
        var teacherModel = try loadUNet(model: teacherPath, input: subject.input)
        teacherModel.frozenWeightTransforms = WinogradWeightCache()
        let (s, t) = (student.config, teacherModel.config)
        guard s.inChannels == t.inChannels, s.outChannels == t.outChannels, s.crossAttentionDim == t.crossAttentionDim else {
            throw ValidationError("--teacher \(teacherPath) takes other inputs or outputs than --model (channels \(t.inChannels) -> \(t.outChannels), context \(t.crossAttentionDim.map(String.init) ?? "none"))")
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
            note("step \(step)\(step == 0 ? " (warm-up)" : ""): \(String(format: "%.3f", t.total)) s, L_ft \(l)", quiet: common.quiet)
        }
        let n = Double(timings.count)
        let mean = DistillationTiming(teacher: timings.map(\.teacher).reduce(0, +) / n,
                                      student: timings.map(\.student).reduce(0, +) / n,
                                      update: timings.map(\.update).reduce(0, +) / n)
        let peak = peakResidentBytes()
        if subject.json {
            try emit(JSONWriter.pretty(.object([
                JSONMember("seconds_per_step", .double(mean.total)), JSONMember("teacher", .double(mean.teacher)),
                JSONMember("student", .double(mean.student)), JSONMember("update", .double(mean.update)),
                JSONMember("parameters", .int(student.parameterCount)),
                JSONMember("teacher_parameters", .int(teacherModel.parameterCount)), JSONMember("batch", .int(batch)),
                JSONMember("size", .int(side)), JSONMember("steps", .int(timings.count)),
                JSONMember("loss", .double(Double(loss))), JSONMember("peak_rss_bytes", .int(peak)),
            ] + setup.jsonMembers)))
        } else {
            try emit(table([["seconds per step", String(format: "%.3f", mean.total)],
                        ["teacher forward", String(format: "%.3f", mean.teacher)],
                        ["student forward + backward", String(format: "%.3f", mean.student)],
                        ["update", String(format: "%.3f", mean.update)],
                        ["parameters", "\(formatCount(student.parameterCount)) (teacher \(formatCount(teacherModel.parameterCount)))"],
                        ["batch", "\(batch) x \(student.config.inChannels) x \(side) x \(side)"],
                        ["peak resident memory", formatBytes(peak)]] + setup.tableRows))
        }
    }
}
