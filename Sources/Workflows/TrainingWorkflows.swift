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
        var studentModel: UNet2D
        let source: ModelOrigin
        let schedulerHome: String
        if let initConfig {
            (studentModel, source) = try initialModel(config: initConfig, seed: training.optimizer.seed)
            schedulerHome = URL(fileURLWithPath: initConfig).deletingLastPathComponent().path
        } else {
            (studentModel, source) = try loadTrainable(student ?? "-", open: open)
            schedulerHome = teacher ?? student ?? "-"
        }
        let teacherModel = try teacher.map { try loadTrainable($0, open: open, frozen: true, quiet: output.quiet) }
        if let teacherModel, let teacher { try checkCompatible(student: studentModel, teacher: teacherModel.unet, teacherPath: teacher) }
        let scheduler = try loadSchedulerConfig(model: schedulerHome, explicit: training.scheduler)
        let retain = try data.load(open, lower: lower, model: studentModel,
                                   teacher: teacherModel.flatMap { model in teacher.map { (model.unet, $0) } },
                                   scheduler: scheduler, seed: training.optimizer.seed, output: output)
        let trainingData = retain.data
        planMemory(&studentModel, batch: training.optimizer.batch, data: trainingData, quiet: output.quiet)
        var method = FinetuneMethod(student: consume studentModel, teacher: teacherModel?.unet, data: trainingData,
                                    objective: LowerLevelObjective(schedule: NoiseSchedule(scheduler), settings: lower),
                                    batchSize: training.optimizer.batch, optimizer: training.optimizer.optimizer())
        let inputs = RunDescription.Inputs(student: initConfig == nil ? source.sha256 : nil,
                                           initConfig: initConfig == nil ? nil : source.sha256,
                                           teacher: teacherModel?.origin.sha256, data: retain.sha256, retainPrompts: retain.prompts)
        let run = RunDescription(command: "finetune", optimizer: training.optimizer, scheduler: scheduler, lower: lower, inputs: inputs)
        try train(&method, run: run, settings: training, source: source, output: output, stop: stop, open: open)
    }

    /// erase: L_CU alone (ESD or ablation) against a frozen teacher.
    public static func erase(model: String, output: OutputSettings, teacher: String, forget: ForgetSettings,
                             training: TrainingSettings, deltaOut: DeltaOutSettings? = nil, open: OpenOptions) throws {
        try declare(output, training, inputs: [(model, "MODEL"), (teacher, "--teacher"), (forget.forget, "--forget"),
                                               (training.scheduler, "--scheduler")], retain: nil, deltaOut: deltaOut)
        let stop = StopRequest()
        try checkOutputTarget(output)
        var studentModel: UNet2D
        let source: ModelOrigin
        (studentModel, source) = try loadTrainable(model, open: open)
        let teacherModel = try loadTrainable(teacher, open: open, frozen: true, quiet: output.quiet)
        try checkCompatible(student: studentModel, teacher: teacherModel.unet, teacherPath: teacher)
        let scheduler = try loadSchedulerConfig(model: teacher, explicit: training.scheduler)
        let forgotten = try forget.load(open, model: studentModel, teacher: teacherModel.unet, teacherPath: teacher, scheduler: scheduler,
                                        seed: training.optimizer.seed, sampleShape: sampleShape(studentModel, data: nil), quiet: output.quiet)
        planMemory(&studentModel, batch: training.optimizer.batch, data: forgotten.data, quiet: output.quiet)
        var method = EraseMethod(student: consume studentModel, teacher: teacherModel.unet, forget: forgotten.data,
                                 objective: ConceptObjective(schedule: NoiseSchedule(scheduler), settings: forget.concept),
                                 batchSize: training.optimizer.batch, optimizer: training.optimizer.optimizer())
        let run = RunDescription(command: "erase", optimizer: training.optimizer, scheduler: scheduler, upper: forget.concept,
                                 inputs: .init(student: source.sha256, teacher: teacherModel.origin.sha256, forget: forgotten.sha256,
                                               forgetPrompts: forgotten.prompts))
        try train(&method, run: run, settings: training, source: source, output: output, stop: stop, open: open)
        try writeDelta(deltaOut, base: model, output: output, open: open)
    }

    /// unlearn: the bilevel problem, penalty or interleaved.
    public static func unlearn(student: String, output: OutputSettings, teacher: String, data: RetainSettings, settings: UnlearnSettings,
                               forget: ForgetSettings, lower: LowerLevelSettings, training: TrainingSettings,
                               deltaOut: DeltaOutSettings? = nil, uce: UCEPhaseSettings? = nil, open: OpenOptions) throws {
        try declare(output, training, inputs: [(student, "STUDENT"), (teacher, "--teacher"), data.input,
                                               (forget.forget, "--forget"), (training.scheduler, "--scheduler")], retain: data, deltaOut: deltaOut)
        let stop = StopRequest()
        try checkOutputTarget(output)
        var studentModel: UNet2D
        let source: ModelOrigin
        (studentModel, source) = try loadTrainable(student, open: open)
        let teacherModel = try loadTrainable(teacher, open: open, frozen: true, quiet: output.quiet)
        try checkCompatible(student: studentModel, teacher: teacherModel.unet, teacherPath: teacher)
        let scheduler = try loadSchedulerConfig(model: teacher, explicit: training.scheduler)
        let noise = NoiseSchedule(scheduler)
        let retained = try data.load(open, lower: lower, model: studentModel, teacher: (teacherModel.unet, teacher),
                                     scheduler: scheduler, seed: training.optimizer.seed, output: output)
        let retain = retained.data
        let forgotten = try forget.load(open, model: studentModel, teacher: teacherModel.unet, teacherPath: teacher, scheduler: scheduler,
                                        seed: training.optimizer.seed, sampleShape: sampleShape(studentModel, data: retain), quiet: output.quiet)
        let forgetData = forgotten.data
        var upperObjective = ConceptObjective(schedule: noise, settings: forget.concept)
        if let uce {
            try uce.prepare(&studentModel, upper: &upperObjective, forget: forgetData, data: retain, file: forget.forget ?? teacher, studentPath: student)
        }
        planMemory(&studentModel, batch: training.optimizer.batch, data: retain, quiet: output.quiet)
        var run = RunDescription(command: "unlearn", optimizer: training.optimizer, scheduler: scheduler, lower: lower,
                                 upper: forget.concept, unlearn: settings,
                                 inputs: .init(student: source.sha256, teacher: teacherModel.origin.sha256, data: retained.sha256,
                                               forget: forgotten.sha256, forgetPrompts: forgotten.prompts,
                                               retainPrompts: retained.prompts))
        run.uce = uce
        // The described settings: the upper optimizer's rate and warmup resolved, the other schedule's options gone.
        let described = run.unlearn ?? settings
        let lowerOptimizer = training.optimizer.optimizer()
        let upperOptimizer = training.optimizer.optimizer(learningRate: described.upperLr, warmup: described.upperWarmup)
        let lowerObjective = LowerLevelObjective(schedule: noise, settings: lower)
        let attack = try upperAttack(described.attack, forget: forgetData)
        switch settings.schedule {
        case .penalty:
            var method = PenaltyMethod(student: consume studentModel, teacher: teacherModel.unet, data: retain, forget: forgetData,
                                       lower: lowerObjective, upper: upperObjective, batchSize: training.optimizer.batch,
                                       penalty: settings.penalty ?? PenaltySettings(),
                                       lowerOptimizer: lowerOptimizer, upperOptimizer: upperOptimizer, upperAttack: attack)
            try train(&method, run: run, settings: training, source: source, output: output, stop: stop, open: open)
            try writeDelta(deltaOut, base: student, output: output, open: open)
        case .interleaved:
            var method = InterleavedMethod(student: consume studentModel, teacher: teacherModel.unet, data: retain, forget: forgetData,
                                           lower: lowerObjective, upper: upperObjective, batchSize: training.optimizer.batch,
                                           upperEvery: (settings.interleaved ?? InterleavedSettings()).upperEvery,
                                           lowerOptimizer: lowerOptimizer, upperOptimizer: upperOptimizer, upperAttack: attack)
            try train(&method, run: run, settings: training, source: source, output: output, stop: stop, open: open)
            try writeDelta(deltaOut, base: student, output: output, open: open)
        }
    }

    /// `--delta-out`: OUT's change from the input model as a LoRA, written by the rank that wrote OUT.
    private static func writeDelta(_ deltaOut: DeltaOutSettings?, base: String, output: OutputSettings, open: OpenOptions) throws {
        guard let deltaOut, (DataParallel.current ?? .solo).isRoot else { return }
        try LoRAWorkflow.writeDelta(basePath: base, editedPath: output.path, settings: deltaOut, open: open, force: output.force,
                                    quiet: output.quiet)
    }

    /// The robust upper level's attack on the forget prompts' encoder states [S, D], when one is asked for.
    private static func upperAttack(_ settings: UpperAttackSettings?, forget: TrainingData) throws -> UpperAttack? {
        guard let settings, settings.kind == .adversarial else { return nil }
        guard let cond = forget.cond, cond.shape.count == 3 else {
            throw TensorFormatError(.missingTensor, "--upper-attack needs the forget prompts' encoder states cond [M,S,D]", tensor: "cond")
        }
        return UpperAttack(settings: settings, tokens: cond.shape[1], width: cond.shape[2])
    }

    /// Turns on activation recomputation when `TrainingMemoryPlan` asks for it at the size of `data`.
    private static func planMemory(_ student: inout UNet2D, batch: Int, data: TrainingData, quiet: Bool) {
        let shape = sampleShape(student, data: data)
        guard TrainingMemoryPlan.recomputesActivations(student, batch: batch, height: shape[1], width: shape[2]) else { return }
        student.recomputesActivations = true
        note("recomputing the student's activations block by block in backward (\(student.parameterCount) parameters)", quiet: quiet)
    }

    /// The output rule for a training command: OUT, the state, the log and the retain cache are none of its inputs.
    private static func declare(_ output: OutputSettings, _ training: TrainingSettings,
                                inputs: [(path: String?, role: String)], retain: RetainSettings?, deltaOut: DeltaOutSettings? = nil) throws {
        try InputSet.declare(inputs: inputs + [(training.heldout, "--heldout")], outputs: [(output.path, "OUT"), (training.statePath(output: output.path), "--state"),
                                                       (training.log, "--log"), (retain?.cachePath(output: output.path), "--retain-cache"),
                                                       (deltaOut?.path, "--delta-out")])
    }
}
