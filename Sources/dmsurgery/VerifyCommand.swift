import ArgumentParser
import TensorFormats
import Workflows

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Validate a checkpoint strictly, scan every float tensor for NaN/Inf, and check sha256 manifests.",
        discussion: """
        Validation applies every rule of the reference safetensors reader plus duplicate keys \
        (formats/safetensors.md). Every floating-point and complex tensor is scanned; tensors holding NaN \
        or infinities are listed with their counts. Manifests use sha256sum's format ('<hex>  <path>'), one \
        line per file (each shard of a sharded checkpoint); --sha256 matches lines by path, then by file name.

        Exit status: 0 valid and clean; 1 NaN/Inf found or a checksum mismatch; 2 invalid or unreadable \
        input; 64 usage error.
        """
    )

    @Argument(help: "Checkpoint: a .safetensors file, a *.index.json, a model folder, or - for standard input.")
    var checkpoint: String

    @Option(name: .customLong("sha256"), help: ArgumentHelp("Check the files against this sha256sum manifest.", valueName: "manifest"))
    var manifest: String?

    @Option(name: .customLong("write-sha256"), help: ArgumentHelp("Write a sha256sum manifest of the files here (- for standard output).", valueName: "manifest"))
    var writeManifest: String?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @OptionGroup var input: InputOptions
    @OptionGroup var common: CommonOptions

    func run() throws {
        var settings = VerifySettings(checkpoint: checkpoint)
        settings.manifest = manifest
        settings.writeManifest = writeManifest
        settings.json = json
        settings.open = input.open
        settings.quiet = common.quiet
        let outcome = try VerifyWorkflow.run(settings)
        if writeManifest == "-" { try emit(outcome.manifest) }
        if let output = outcome.output { try emit(output) }
        if outcome.hasProblems { throw ExitStatus.problemsFound }
    }
}
