import ArgumentParser
import TensorFormats
import Workflows

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two checkpoints: tensors only in one, dtype and shape changes, value errors, metadata.",
        discussion: """
        Values are compared across dtypes (B is the reference): max absolute error, max relative error \
        |a-b|/|b|, relative L2 norm ||a-b||/||b||, cosine similarity, and the count of values with \
        |a-b| > atol + rtol*|b| (NaN in both is equal; NaN in one counts). Tensors with identical bytes \
        are not decoded. Defaults (atol 0, rtol 0) ask for exact equality.

        Exit status: 0 the checkpoints match; 1 they differ; 2 invalid or unreadable input; 64 usage error.
        """
    )

    @Argument(help: "First checkpoint (or - for standard input).")
    var a: String

    @Argument(help: "Second checkpoint, the reference for relative errors (or - for standard input).")
    var b: String

    @Option(help: "Absolute tolerance.")
    var atol = 0.0

    @Option(help: "Relative tolerance (times |b|).")
    var rtol = 0.0

    @Flag(help: "Compare values only: a dtype change alone is not a difference.")
    var ignoreDtype = false

    @Flag(help: "Metadata differences are reported but are not a difference.")
    var ignoreMetadata = false

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Flag(help: "List every changed tensor, also those within tolerance.")
    var all = false

    @OptionGroup var input: InputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard a != "-" || b != "-" else { throw ValidationError("only one of the two checkpoints can be standard input") }
        guard atol >= 0, rtol >= 0, atol.isFinite, rtol.isFinite else { throw ValidationError("tolerances must be finite and non-negative") }
    }

    func run() throws {
        var settings = DiffSettings(a: a, b: b)
        settings.atol = atol
        settings.rtol = rtol
        settings.ignoreDtype = ignoreDtype
        settings.ignoreMetadata = ignoreMetadata
        settings.json = json
        settings.all = all
        settings.open = input.open
        settings.quiet = common.quiet
        let outcome = try DiffWorkflow.run(settings)
        try emit(outcome.output)
        if outcome.report.differs { throw ExitStatus.problemsFound }
    }
}
