import ArgumentParser
import Workflows

struct EraseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "erase",
        abstract: "Remove a concept from a model: the upper level L_CU alone (ESD with teacher guidance, or concept ablation), or UCE's closed-form edit.",
        discussion: """
        ESD: L_CU = MSE(f_s(x_t,t,c), f_T(x_t,t,empty) - eta*[f_T(x_t,t,c) - f_T(x_t,t,empty)]) over the forget images \
        noised at random timesteps with their prompts c. --method ablation pulls f_s(x_t,t,c) to \
        f_T(x_t,t,c_anchor) instead (the forget file's anchor prompts). A forget file without x0 gets its \
        images from the teacher (DDIM with guidance, seeded). After finetune this is the two-stage baseline. \
        Formats: formats/training-data.md, formats/training.md.
        --forget-prompt TEXT... replaces --forget: the prompts encoded by the --teacher pipeline folder's \
        text encoder (frozen), used as a forget file of those prompts without x0.
        --method uce trains nothing: every cross-attention attn2.to_k/to_v W becomes W*R*M^-1 with \
        R = lambda*I + e*sum c_t c_e^T + p*sum c_p c_p^T, M = lambda*I + e*sum c_e c_e^T + p*sum c_p c_p^T (UCE, \
        Gandikota et al. 2024; defaults e = p = 1, lambda = 0.5). With --forget-prompt the embeddings are the \
        last token of each prompt from the text encoder of MODEL (a pipeline folder) or of --teacher; with \
        --forget (concept world) the forget prompts' token rows absent from --data, mapped to the anchor's. \
        No --teacher is needed and the training options are refused. Format: formats/uce.md.
        --delta-out FILE --rank R [--lora-format peft|kohya] also writes OUT's change from MODEL as a LoRA \
        (formats/lora.md); a UCE edit is exactly of rank at most (erased + preserved embeddings).

        Exit status: 0 success; 2 invalid input or an I/O error; 64 usage error; 130/143 interrupted by \
        SIGINT/SIGTERM after saving the resumable state.
        """
    )

    @Argument(help: "Model to edit (a checkpoint, folder, or -).")
    var model: String

    @Argument(help: "Output file, or - for standard output.")
    var output: String

    @Option(help: ArgumentHelp("Frozen teacher giving the targets (esd, ablation); with --method uce, a pipeline folder whose text encoder encodes --forget-prompt when MODEL is not one.", valueName: "model"))
    var teacher: String?

    @OptionGroup var forget: ForgetOptions<EraseSpelling>
    @OptionGroup var uce: UCEOptions
    @OptionGroup var delta: DeltaOutOptions
    @OptionGroup var training: TrainingOptions
    @OptionGroup var input: InputOptions
    @OptionGroup var binary: BinaryOutputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        try delta.check(model: model, output: output)
        guard forget.concept.method != .uce else { return try uce.check(forget: forget, training: training, teacher: teacher) }
        try training.validate(output: output)
        guard teacher != nil else { throw ValidationError("--method \(forget.concept.method.rawValue) needs --teacher") }
        if let option = uce.anyGiven { throw ValidationError("\(option) applies to --method uce") }
    }

    func run() throws {
        let out = OutputSettings(path: output, force: binary.force, quiet: common.quiet)
        if forget.concept.method == .uce {
            return try UCEWorkflow.erase(model: model, output: out, settings: uce.settings(forget: forget, teacher: teacher),
                                          deltaOut: delta.settings, open: input.open)
        }
        guard let teacher else { throw ValidationError("--method \(forget.concept.method.rawValue) needs --teacher") }
        try training.joinRanks()
        try TrainingWorkflows.erase(model: model, output: out, teacher: teacher, forget: try forget.settings, training: try training.settings,
                                    deltaOut: delta.settings, open: input.open)
    }
}
