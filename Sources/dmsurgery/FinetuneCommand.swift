import ArgumentParser
import Diffusion
import Foundation
import TensorFormats
import Training
import UNet

struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Train a UNet on a data file: the lower level L_ft, or plain diffusion training without a teacher.",
        discussion: """
        L_ft = w_diff L_diff + w_out L_outKD + w_feat L_featKD (defaults 1, 2, 0.1): L_diff is the MSE \
        against the scheduler's target (epsilon or v), optionally min-SNR weighted; L_outKD the MSE to the \
        teacher's output; L_featKD the mean MSE over every down, mid and up block output. Without \
        --teacher only L_diff is trained. --init-config CONFIG.json starts from fresh weights seeded by \
        --seed (then only OUT is given). AdamW, linear warmup then constant rate, global-norm clipping, \
        optional EMA. The data file format is in formats/training-data.md; the state file, log and \
        resume rules in formats/training.md.

        Exit status: 0 success; 2 invalid input or an I/O error; 64 usage error; 130/143 interrupted by \
        SIGINT/SIGTERM after saving the resumable state.
        """
    )

    @Argument(help: ArgumentHelp("STUDENT OUT (a checkpoint, folder or - ; OUT a file or -), or OUT alone with --init-config.", valueName: "paths"))
    var paths: [String]

    @Option(help: ArgumentHelp("Training data: x0 [N,C,H,W], cond [N,S,D], uncond [S,D] (formats/training-data.md).", valueName: "file"))
    var data: String

    @Option(help: ArgumentHelp("Frozen teacher for output and feature distillation.", valueName: "model"))
    var teacher: String?

    @Option(name: .customLong("init-config"), help: ArgumentHelp("Start from fresh weights of this diffusers config.json (seeded by --seed).", valueName: "config"))
    var initConfig: String?

    @OptionGroup var lower: LowerLevelOptions
    @OptionGroup var training: TrainingOptions
    @OptionGroup var input: InputOptions
    @OptionGroup var binary: BinaryOutputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        let expected = initConfig == nil ? 2 : 1
        guard paths.count == expected else {
            throw ValidationError(initConfig == nil ? "expected STUDENT and OUT" : "with --init-config give OUT only")
        }
        try training.validate(output: paths[expected - 1])
    }

    func run() throws {
        let stop = StopRequest()
        try runCommand {
            try training.joinRanks()
            let output = paths.last!
            try checkOutputTarget(output, force: binary.force)
            let source: TrainableModel
            let schedulerHome: String
            if let initConfig {
                let text: String
                do { text = try String(contentsOfFile: initConfig, encoding: .utf8) } catch {
                    throw TensorFormatError(.notFound, "cannot read the config", file: initConfig)
                }
                do {
                    source = TrainableModel(unet: try UNet2D(config: try UNetConfig(json: text), randomSeed: training.seed),
                                            configJSON: text, metadata: Metadata())
                } catch let error as UNetError { throw located(error, file: initConfig) }
                schedulerHome = URL(fileURLWithPath: initConfig).deletingLastPathComponent().path
            } else {
                source = try loadTrainable(paths[0], input: input)
                schedulerHome = teacher ?? paths[0]
            }
            let teacherModel = try teacher.map { try loadFrozen($0, input: input) }
            if let teacherModel, let teacher { try checkCompatible(student: source.unet, teacher: teacherModel, teacherPath: teacher) }
            let trainingData = try lower.loadData(data, model: source.unet, input: input)
            let schedule = NoiseSchedule(try loadSchedulerConfig(model: schedulerHome, explicit: training.scheduler))
            var method = FinetuneMethod(student: source.unet, teacher: teacherModel, data: trainingData,
                                        objective: lower.objective(schedule), batchSize: training.batch,
                                        optimizer: training.optimizer())
            let fingerprint = "\(training.fingerprint) \(lower.fingerprint) teacher=\(teacher != nil) init=\(initConfig != nil)"
            try train(&method, command: "finetune", options: training, fingerprint: fingerprint, source: source,
                      output: output, force: binary.force, quiet: common.quiet, stop: stop)
        }
    }
}
