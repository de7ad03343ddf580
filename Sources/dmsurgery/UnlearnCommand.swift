import ArgumentParser
import Diffusion
import Foundation
import TensorFormats
import Training
import UNet

/// How the two levels are scheduled.
enum UnlearnSchedule: String, CaseIterable, ExpressibleByArgument {
    case penalty
    case interleaved
}

struct UnlearnCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unlearn",
        abstract: "Bilevel fine-unlearning: remove a concept (L_CU) while staying a minimiser of the fine-tuning loss L_ft.",
        discussion: """
        --schedule penalty (the paper): min_theta max_phi L_CU(theta) + lambda(L_ft(theta) - L_ft(phi)), first order: per outer \
        iteration a lower-level copy phi takes --inner-steps AdamW steps on L_ft (rate --lr), then the student \
        theta one step along grad L_CU(theta) + lambda * grad L_ft(theta) (its own AdamW, rate --upper-lr); lambda ramps linearly from 0 \
        over --lambda-ramp iterations (0: constant). The log's gap is L_ft(theta) - L_ft(phi). \
        --schedule interleaved (the authors' code): one model, a lower step on L_ft every iteration and an \
        upper step on L_CU every --upper-every-th. Equations and costs: formats/training.md.

        Exit status: 0 success; 2 invalid input or an I/O error; 64 usage error; 130/143 interrupted by \
        SIGINT/SIGTERM after saving the resumable state.
        """
    )

    @Argument(help: "Student to unlearn (a checkpoint, folder, or -).")
    var student: String

    @Argument(help: "Output file, or - for standard output.")
    var output: String

    @Option(help: ArgumentHelp("Frozen teacher (distillation targets and ESD guidance).", valueName: "model"))
    var teacher: String

    @Option(help: ArgumentHelp("Retain data: x0 [N,C,H,W], cond [N,S,D], uncond [S,D].", valueName: "file"))
    var data: String

    @Option(help: "penalty (the paper's first-order penalty method) or interleaved (the authors' code).")
    var schedule: UnlearnSchedule = .penalty

    @Option(name: .customLong("inner-steps"), help: "Penalty: lower-level steps of the copy per outer iteration (K).")
    var innerSteps = 20

    @Option(help: "Penalty: weight lambda of the lower-level objective in the student's step.")
    var lambda: Float = 100

    @Option(name: .customLong("lambda-ramp"), help: "Penalty: iterations over which lambda grows linearly from 0 (0: constant).")
    var lambdaRamp = 0

    @Option(name: .customLong("upper-lr"), help: "Learning rate of the upper-level optimizer (default --lr).")
    var upperLr: Float?

    @Option(name: .customLong("upper-warmup"), help: "Warmup of the upper-level optimizer (default --warmup).")
    var upperWarmup: Int?

    @Option(name: .customLong("upper-every"), help: "Interleaved: an upper step every k-th iteration.")
    var upperEvery = 10

    @OptionGroup var forget: ForgetOptions
    @OptionGroup var lower: LowerLevelOptions
    @OptionGroup var training: TrainingOptions
    @OptionGroup var input: InputOptions
    @OptionGroup var binary: BinaryOutputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        try training.validate(output: output)
        guard innerSteps >= 1, upperEvery >= 1, lambdaRamp >= 0, lambda >= 0 else {
            throw ValidationError("--inner-steps and --upper-every must be at least 1; --lambda and --lambda-ramp not negative")
        }
        if let upperLr, upperLr <= 0 { throw ValidationError("--upper-lr must be positive") }
        if let upperWarmup, upperWarmup < 0 { throw ValidationError("--upper-warmup must not be negative") }
    }

    func run() throws {
        let stop = StopRequest()
        try runCommand {
            try training.joinRanks()
            try checkOutputTarget(output, force: binary.force)
            let source = try loadTrainable(student, input: input)
            let teacherModel = try loadFrozen(teacher, input: input)
            try checkCompatible(student: source.unet, teacher: teacherModel, teacherPath: teacher)
            let scheduler = try loadSchedulerConfig(model: teacher, explicit: training.scheduler)
            let noise = NoiseSchedule(scheduler)
            let retain = try lower.loadData(data, model: source.unet, input: input)
            let forgetData = try forget.load(input, model: source.unet, teacher: teacherModel, scheduler: scheduler,
                                             seed: training.seed, sampleShape: sampleShape(source.unet, data: retain), quiet: common.quiet)
            let lowerOptimizer = training.optimizer()
            let upperOptimizer = training.optimizer(learningRate: upperLr, warmup: upperWarmup)
            var fingerprint = "\(training.fingerprint) \(lower.fingerprint) \(forget.fingerprint) schedule=\(schedule.rawValue) "
                + "upper-lr=\(upperLr ?? training.lr) upper-warmup=\(upperWarmup ?? training.warmup)"
            switch schedule {
            case .penalty:
                fingerprint += " inner-steps=\(innerSteps) lambda=\(lambda) lambda-ramp=\(lambdaRamp)"
                var method = PenaltyMethod(student: source.unet, teacher: teacherModel, data: retain, forget: forgetData,
                                           lower: lower.objective(noise), upper: forget.objective(noise), batchSize: training.batch,
                                           innerSteps: innerSteps, penalty: PenaltySchedule(value: lambda, ramp: lambdaRamp),
                                           lowerOptimizer: lowerOptimizer, upperOptimizer: upperOptimizer)
                try train(&method, command: "unlearn", options: training, fingerprint: fingerprint, source: source,
                          output: output, force: binary.force, quiet: common.quiet, stop: stop)
            case .interleaved:
                fingerprint += " upper-every=\(upperEvery)"
                var method = InterleavedMethod(student: source.unet, teacher: teacherModel, data: retain, forget: forgetData,
                                               lower: lower.objective(noise), upper: forget.objective(noise), batchSize: training.batch,
                                               upperEvery: upperEvery, lowerOptimizer: lowerOptimizer, upperOptimizer: upperOptimizer)
                try train(&method, command: "unlearn", options: training, fingerprint: fingerprint, source: source,
                          output: output, force: binary.force, quiet: common.quiet, stop: stop)
            }
        }
    }
}
