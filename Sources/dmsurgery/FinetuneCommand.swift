import ArgumentParser
import Workflows

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
        --retain-prompts FILE (data-free distillation: the --teacher pipeline's own DDIM+CFG latent samples \
        for each prompt) or --retain-images DIR (PNG files encoded by its VAE) replace --data; the made data \
        is written to --retain-cache (default OUT.retain.safetensors) for a later --data. The text encoder \
        and VAE come from the --teacher pipeline folder and stay frozen (formats/training.md).

        Exit status: 0 success; 2 invalid input or an I/O error; 64 usage error; 130/143 interrupted by \
        SIGINT/SIGTERM after saving the resumable state.
        """
    )

    @Argument(help: ArgumentHelp("STUDENT OUT (a checkpoint, folder or - ; OUT a file or -), or OUT alone with --init-config.", valueName: "paths"))
    var paths: [String]

    @OptionGroup var retain: RetainOptions

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
        if retain.needsPipeline && teacher == nil {
            throw ValidationError("--retain-prompts and --retain-images need --teacher PIPELINE (its text encoder and VAE)")
        }
    }

    func run() throws {
        try training.joinRanks()
        try TrainingWorkflows.finetune(student: initConfig == nil ? paths[0] : nil, initConfig: initConfig,
                                       output: OutputSettings(path: paths.last!, force: binary.force, quiet: common.quiet),
                                       data: retain.settings, teacher: teacher, lower: try lower.settings, training: try training.settings,
                                       open: input.open)
    }
}
