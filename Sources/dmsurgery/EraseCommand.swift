import ArgumentParser
import Workflows

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
        --forget-prompt TEXT... replaces --forget: the prompts encoded by the --teacher pipeline folder's \
        text encoder (frozen), used as a forget file of those prompts without x0.

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

    @OptionGroup var forget: ForgetOptions<EraseSpelling>
    @OptionGroup var training: TrainingOptions
    @OptionGroup var input: InputOptions
    @OptionGroup var binary: BinaryOutputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws { try training.validate(output: output) }

    func run() throws {
        try training.joinRanks()
        try TrainingWorkflows.erase(model: model, output: OutputSettings(path: output, force: binary.force, quiet: common.quiet),
                                    teacher: teacher, forget: try forget.settings, training: try training.settings, open: input.open)
    }
}
