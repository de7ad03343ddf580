import ArgumentParser
import Workflows

/// The lower level's data (finetune, unlearn): a data file, or data made with the --teacher pipeline.
struct RetainOptions: ParsableArguments {
    /// The defaults the options start from (and the help shows): the settings' own.
    private static let defaults = RetainSettings(data: "")

    @Option(help: ArgumentHelp("Training data: x0 [N,C,H,W], cond [N,S,D], uncond [S,D]; SDXL also cond_pooled [N,P], time_ids [N,6], uncond_pooled [P] (formats/training-data.md).", valueName: "file"))
    var data: String?

    @Option(name: .customLong("retain-prompts"), help: ArgumentHelp("Instead of --data: prompts (one per line, UTF-8); the data is the --teacher pipeline's own DDIM+CFG latent samples for them.", valueName: "file"))
    var retainPrompts: String?

    @Option(name: .customLong("retain-images"), help: ArgumentHelp("Instead of --data: a folder of PNG files (one size), encoded by the --teacher pipeline's VAE; prompts from DIR/prompts.txt, one line per image in name order, else the empty prompt.", valueName: "dir"))
    var retainImages: String?

    @Option(name: .customLong("retain-cache"), help: ArgumentHelp("Where made retain data is written as a data file for a later --data (default OUT.retain.safetensors; none when OUT is -).", valueName: "file"))
    var retainCache: String?

    @Option(name: .customLong("retain-samples"), help: "Teacher samples per prompt of --retain-prompts.")
    var retainSamples = Self.defaults.samplesPerPrompt

    @Option(name: .customLong("retain-sample-steps"), help: "DDIM steps of those samples.")
    var retainSampleSteps = Self.defaults.sampleSteps

    @Option(name: .customLong("retain-guidance"), help: "Guidance scale of those samples.")
    var retainGuidance = Self.defaults.guidance

    @Option(name: .customLong("retain-size"), help: "Latent side of those samples (default the UNet's sample_size).")
    var retainSize: Int?

    func validate() throws {
        guard [data, retainPrompts, retainImages].compactMap({ $0 }).count == 1 else {
            throw ValidationError("give one of --data FILE, --retain-prompts FILE and --retain-images DIR")
        }
        try requireFinite(["--retain-guidance": retainGuidance])
        guard (1...100_000).contains(retainSamples), (1...10_000).contains(retainSampleSteps) else {
            throw ValidationError("--retain-samples must be in 1...100000 and --retain-sample-steps in 1...10000")
        }
        if let retainSize, !(1...4096).contains(retainSize) { throw ValidationError("--retain-size must be in 1...4096") }
        if retainCache == "-" { throw ValidationError("--retain-cache must be a file, not standard output") }
        if retainCache != nil && data != nil { throw ValidationError("--retain-cache goes with --retain-prompts or --retain-images") }
    }

    /// Whether the data is made with the teacher pipeline (which --teacher must then name).
    var needsPipeline: Bool { data == nil }

    var settings: RetainSettings {
        var s = RetainSettings(data: data ?? "")
        if let retainPrompts { s = RetainSettings(.prompts(retainPrompts)) }
        if let retainImages { s = RetainSettings(.images(retainImages)) }
        s.cache = retainCache
        s.samplesPerPrompt = retainSamples
        s.sampleSteps = retainSampleSteps
        s.guidance = retainGuidance
        s.size = retainSize
        return s
    }
}
