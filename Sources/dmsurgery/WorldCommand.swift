import ArgumentParser
import ConceptWorld
import Workflows

extension WorldConcept: ExpressibleByArgument {}

struct WorldCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "world",
        abstract: "Render the procedural concept world's data files, or list its prompts.",
        discussion: """
        Writes DIR/all.safetensors (every prompt: the teacher's training data), DIR/retain.safetensors \
        (never the forget style: the students' fine-tuning data), DIR/forget.safetensors (forget \
        prompts with their anchor-style twins, no images), DIR/heldout.safetensors (retain renders \
        from a disjoint random stream) and DIR/world.json. Images are 3x16x16 in [-1, 1]; prompts are \
        4 tokens of a fixed 32-dim embedding table. The same --seed gives the same bytes on every \
        machine. See formats/concept-world.md.

        --concept picks what the files forget: style (default, the style 'stripes': the original world, \
        byte for byte), object (the shape 'cross', which only the extended world's 48 prompts draw) or \
        both (forget.safetensors then holds both concepts' prompts: one multi-concept forget file). \
        retain and heldout hold the prompts showing none of the chosen concepts.

        --prompts prints the prompt list instead (index, forget or retain, text), one per line.

        Exit status: 0 success, 2 an output could not be written, 64 usage error.
        """
    )

    @Argument(help: "Output directory (created if missing).")
    var dir: String?

    @Option(help: "Seed of the renders' jitter (the embedding table is fixed).")
    var seed: UInt64 = 0

    @Option(help: "Renders per prompt in all.safetensors and retain.safetensors.")
    var perPrompt = 64

    @Option(help: "Renders per retain prompt in heldout.safetensors.")
    var heldoutPerPrompt = 8

    @Option(help: "What the world forgets: style, object or both.")
    var concept: WorldConcept = .style

    @Flag(help: "Print the world's prompts and exit.")
    var prompts = false

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard perPrompt >= 1, heldoutPerPrompt >= 1 else { throw ValidationError("--per-prompt and --heldout-per-prompt must be at least 1") }
        guard prompts || dir != nil else { throw ValidationError("give an output directory, or --prompts") }
    }

    func run() throws {
        if prompts {
            try emit(WorldWorkflow.promptList(concept))
            return
        }
        guard let dir else { return }
        var settings = WorldSettings(dir: dir)
        settings.seed = seed
        settings.perPrompt = perPrompt
        settings.heldoutPerPrompt = heldoutPerPrompt
        settings.concept = concept
        settings.quiet = common.quiet
        try WorldWorkflow.run(settings)
    }
}
