import ArgumentParser
import Diffusion
import Foundation
import TensorFormats
import Training
import UNet

struct EraseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "erase",
        abstract: "Remove a concept from a model: the upper level L_CU alone (ESD with teacher guidance, or concept ablation).",
        discussion: """
        ESD: L_CU = MSE(f_s(x_t,t,c), f_T(x_t,t,empty) - eta*[f_T(x_t,t,c) - f_T(x_t,t,empty)]) over the forget images \
        noised at random timesteps with their prompts c. --method ablation pulls f_s(x_t,t,c) to \
        f_T(x_t,t,c_anchor) instead (the forget file's anchor prompts). A forget file without x0 gets its \
        images from the teacher (DDIM with guidance, seeded). After finetune this is the two-stage baseline. \
        Formats: formats/training-data.md, formats/training.md.

        Exit status: 0 success; 2 invalid input or an I/O error; 64 usage error; 130/143 interrupted by \
        SIGINT/SIGTERM after saving the resumable state.
        """
    )

    @Argument(help: "Model to edit (a checkpoint, folder, or -).")
    var model: String

    @Argument(help: "Output file, or - for standard output.")
    var output: String

    @Option(help: ArgumentHelp("Frozen teacher giving the targets.", valueName: "model"))
    var teacher: String

    @OptionGroup var forget: ForgetOptions
    @OptionGroup var training: TrainingOptions
    @OptionGroup var input: InputOptions
    @OptionGroup var binary: BinaryOutputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws { try training.validate(output: output) }

    func run() throws {
        let stop = StopRequest()
        try runCommand {
            try training.joinRanks()
            try checkOutputTarget(output, force: binary.force)
            let source = try loadTrainable(model, input: input)
            let teacherModel = try loadFrozen(teacher, input: input)
            try checkCompatible(student: source.unet, teacher: teacherModel, teacherPath: teacher)
            let scheduler = try loadSchedulerConfig(model: teacher, explicit: training.scheduler)
            let forgetData = try forget.load(input, model: source.unet, teacher: teacherModel, scheduler: scheduler,
                                             seed: training.seed, sampleShape: sampleShape(source.unet, data: nil), quiet: common.quiet)
            var method = EraseMethod(student: source.unet, teacher: teacherModel, forget: forgetData,
                                     objective: forget.objective(NoiseSchedule(scheduler)), batchSize: training.batch,
                                     optimizer: training.optimizer())
            try train(&method, command: "erase", options: training, fingerprint: "\(training.fingerprint) \(forget.fingerprint)",
                      source: source, output: output, force: binary.force, quiet: common.quiet, stop: stop)
        }
    }
}
