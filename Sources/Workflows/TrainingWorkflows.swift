import Diffusion
import Foundation
import TensorFormats
import Training
import UNet

/// The bodies of finetune, erase and unlearn: load the models and data, describe the run, train, write.
/// The CLI parses options into these plain values; tests call them in-process.
public enum TrainingWorkflows {
    /// finetune: L_ft on a data file, from STUDENT or from fresh weights of `initConfig`.
    public static func finetune(student: String?, initConfig: String?, output: OutputSettings, data: RetainSettings, teacher: String?,
                                lower: LowerLevelSettings, training: TrainingSettings, open: OpenOptions) throws {
        try declare(output, training, inputs: [(student, "STUDENT"), (initConfig, "--init-config"), data.input,
                                               (teacher, "--teacher"), (training.scheduler, "--scheduler")], retain: data)
        let stop = StopRequest()
        try checkOutputTarget(output)
        let source: TrainableModel
        let schedulerHome: String
        if let initConfig {
            source = try initialModel(config: initConfig, seed: training.seed)
            schedulerHome = URL(fileURLWithPath: initConfig).deletingLastPathComponent().path
        } else {
            source = try loadTrainable(student ?? "-", open: open)
            schedulerHome = teacher ?? student ?? "-"
        }
        let teacherModel = try teacher.map { try loadTrainable($0, open: open) }
        if let teacherModel, let teacher { try checkCompatible(student: source.unet, teacher: teacherModel.unet, teacherPath: teacher) }
        let scheduler = try loadSchedulerConfig(model: schedulerHome, explicit: training.scheduler)
        let retain = try data.load(open, lower: lower, model: source.unet,
                                   teacher: teacherModel.flatMap { model in teacher.map { (model.unet, $0) } },
                                   scheduler: scheduler, seed: training.seed, output: output)
        let trainingData = retain.data
        var method = FinetuneMethod(student: source.unet, teacher: teacherModel?.unet, data: trainingData,
                                    objective: lower.objective(NoiseSchedule(scheduler)), batchSize: training.batch,
                                    optimizer: training.optimizer())
        let inputs = RunDescription.Inputs(student: initConfig == nil ? source.sha256 : nil,
                                           initConfig: initConfig == nil ? nil : source.sha256,
                                           teacher: teacherModel?.sha256, data: retain.sha256, retainPrompts: retain.prompts)
        var run = training.describe("finetune", scheduler: scheduler, inputs: inputs)
        lower.describe(into: &run)
        try train(&method, run: run, settings: training, source: source, output: output, stop: stop, open: open)
    }

    /// erase: L_CU alone (ESD or ablation) against a frozen teacher.
    public static func erase(model: String, output: OutputSettings, teacher: String, forget: ForgetSettings,
                             training: TrainingSettings, open: OpenOptions) throws {
        try declare(output, training, inputs: [(model, "MODEL"), (teacher, "--teacher"), (forget.forget, "--forget"),
                                               (training.scheduler, "--scheduler")], retain: nil)
        let stop = StopRequest()
        try checkOutputTarget(output)
        let source = try loadTrainable(model, open: open)
        let teacherModel = try loadTrainable(teacher, open: open)
        try checkCompatible(student: source.unet, teacher: teacherModel.unet, teacherPath: teacher)
        let scheduler = try loadSchedulerConfig(model: teacher, explicit: training.scheduler)
        let forgotten = try forget.load(open, model: source.unet, teacher: teacherModel.unet, teacherPath: teacher, scheduler: scheduler,
                                        seed: training.seed, sampleShape: sampleShape(source.unet, data: nil), quiet: output.quiet)
        var method = EraseMethod(student: source.unet, teacher: teacherModel.unet, forget: forgotten.data,
                                 objective: forget.objective(NoiseSchedule(scheduler)), batchSize: training.batch,
                                 optimizer: training.optimizer())
        var run = training.describe("erase", scheduler: scheduler,
                                    inputs: .init(student: source.sha256, teacher: teacherModel.sha256, forget: forgotten.sha256,
                                                  forgetPrompts: forgotten.prompts))
        forget.describe(into: &run)
        try train(&method, run: run, settings: training, source: source, output: output, stop: stop, open: open)
    }

    /// unlearn: the bilevel problem, penalty or interleaved.
    public static func unlearn(student: String, output: OutputSettings, teacher: String, data: RetainSettings, settings: UnlearnSettings,
                               forget: ForgetSettings, lower: LowerLevelSettings, training: TrainingSettings,
                               open: OpenOptions) throws {
        try declare(output, training, inputs: [(student, "STUDENT"), (teacher, "--teacher"), data.input,
                                               (forget.forget, "--forget"), (training.scheduler, "--scheduler")], retain: data)
        let stop = StopRequest()
        try checkOutputTarget(output)
        let source = try loadTrainable(student, open: open)
        let teacherModel = try loadTrainable(teacher, open: open)
        try checkCompatible(student: source.unet, teacher: teacherModel.unet, teacherPath: teacher)
        let scheduler = try loadSchedulerConfig(model: teacher, explicit: training.scheduler)
        let noise = NoiseSchedule(scheduler)
        let retained = try data.load(open, lower: lower, model: source.unet, teacher: (teacherModel.unet, teacher),
                                     scheduler: scheduler, seed: training.seed, output: output)
        let retain = retained.data
        let forgotten = try forget.load(open, model: source.unet, teacher: teacherModel.unet, teacherPath: teacher, scheduler: scheduler,
                                        seed: training.seed, sampleShape: sampleShape(source.unet, data: retain), quiet: output.quiet)
        let forgetData = forgotten.data
        let lowerOptimizer = training.optimizer()
        let upperOptimizer = training.optimizer(learningRate: settings.upperLr, warmup: settings.upperWarmup)
        var run = training.describe("unlearn", scheduler: scheduler,
                                    inputs: .init(student: source.sha256, teacher: teacherModel.sha256, data: retained.sha256,
                                                  forget: forgotten.sha256, forgetPrompts: forgotten.prompts,
                                                  retainPrompts: retained.prompts))
        lower.describe(into: &run)
        forget.describe(into: &run)
        settings.describe(into: &run)
        switch settings.schedule {
        case .penalty:
            var method = PenaltyMethod(student: source.unet, teacher: teacherModel.unet, data: retain, forget: forgetData,
                                       lower: lower.objective(noise), upper: forget.objective(noise), batchSize: training.batch,
                                       innerSteps: settings.innerSteps,
                                       penalty: PenaltySchedule(value: settings.lambda, ramp: settings.lambdaRamp),
                                       lowerOptimizer: lowerOptimizer, upperOptimizer: upperOptimizer)
            try train(&method, run: run, settings: training, source: source, output: output, stop: stop, open: open)
        case .interleaved:
            var method = InterleavedMethod(student: source.unet, teacher: teacherModel.unet, data: retain, forget: forgetData,
                                           lower: lower.objective(noise), upper: forget.objective(noise), batchSize: training.batch,
                                           upperEvery: settings.upperEvery, lowerOptimizer: lowerOptimizer,
                                           upperOptimizer: upperOptimizer)
            try train(&method, run: run, settings: training, source: source, output: output, stop: stop, open: open)
        }
    }

    /// The output rule for a training command: OUT, the state, the log and the retain cache are none of its inputs.
    private static func declare(_ output: OutputSettings, _ training: TrainingSettings,
                                inputs: [(path: String?, role: String)], retain: RetainSettings?) throws {
        try InputSet.declare(inputs: inputs + [(training.heldout, "--heldout")], outputs: [(output.path, "OUT"), (training.statePath(output: output.path), "--state"),
                                                       (training.log, "--log"), (retain?.cachePath(output: output.path), "--retain-cache")])
    }
}
