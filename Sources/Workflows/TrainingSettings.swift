import Training

/// What every training subcommand (finetune, erase, unlearn) is told, as plain values: the options that
/// shape the weights (`optimizer`, stored whole in the run description) and those that only steer the
/// run (how long, where the state and log go). The settings' initial values are the options' defaults,
/// written once (Training's RunSettings.swift and here); the CLI's option groups decode into these
/// values by field name, and its help shows these defaults.
public struct TrainingSettings: Codable, Sendable {
    /// Not part of the run description, so a finished run can be extended.
    public var steps = 1000
    public var optimizer = OptimizerSettings()
    /// scheduler_config.json to train with instead of the model's.
    public var scheduler: String?
    public var log: String?
    /// `--heldout`: a data file the student is measured on every `heldoutEvery` iterations (the log's
    /// `heldout_loss`; formats/training.md).
    public var heldout: String?
    public var heldoutEvery = 50
    public var checkpointEvery: Int?
    public var resume = false
    public var state: String?

    public init() {}

    /// Where the resumable state lives (default OUT.state.safetensors; none when OUT is standard output).
    public func statePath(output: String) -> String? { state ?? (output == "-" ? nil : output + ".state.safetensors") }
}

/// The upper level: the concept to remove (a forget file or prompts, inputs hashed into the run
/// description) and how (`concept`, stored whole in it) (erase, unlearn).
public struct ForgetSettings: Codable, Sendable {
    /// The forget file (formats/training-data.md); nil when the concept is given as `prompts`.
    public var forget: String?
    /// `--forget-prompt`: prompts encoded by the teacher pipeline's text encoder, used as a forget file of
    /// those prompts without x0 would be.
    public var prompts: [String] = []
    public var concept = ConceptSettings()

    public init(forget: String) { self.forget = forget }

    public init(prompts: [String]) { self.prompts = prompts }
}

/// Where the lower level's data comes from (finetune, unlearn): a data file, or the teacher pipeline's own
/// samples for prompts, or pictures encoded by its VAE (formats/training.md, "Prompt-driven training").
public struct RetainSettings: Sendable {
    public enum Source: Sendable, Equatable {
        /// `--data FILE`.
        case data(String)
        /// `--retain-prompts FILE`: the teacher's DDIM + CFG samples for each prompt.
        case prompts(String)
        /// `--retain-images DIR`: PNG files and the sidecar DIR/prompts.txt.
        case images(String)
    }

    public var source: Source
    /// Where made data is written as a data file (default OUT.retain.safetensors; none for OUT `-`).
    public var cache: String?
    public var samplesPerPrompt = 1
    public var sampleSteps = 25
    public var guidance: Float = 5
    /// Latent side of the teacher's samples (default the UNet config's sample_size).
    public var size: Int?

    public init(_ source: Source) { self.source = source }

    public init(data: String) { self.init(.data(data)) }

    /// The file or folder read, and its option, for the output rule.
    var input: (path: String?, role: String) {
        switch source {
        case .data(let path): (path, "--data")
        case .prompts(let path): (path, "--retain-prompts")
        case .images(let path): (path, "--retain-images")
        }
    }

    /// The data file written with made data, if any.
    func cachePath(output: String) -> String? {
        if case .data = source { return nil }
        return cache ?? (output == "-" ? nil : output + ".retain.safetensors")
    }
}

/// Where a command's output goes.
public struct OutputSettings: Sendable {
    public var path: String
    /// Binary output to a terminal.
    public var force = false
    public var quiet = false

    public init(path: String, force: Bool = false, quiet: Bool = false) {
        self.path = path
        self.force = force
        self.quiet = quiet
    }
}
