import ArgumentParser
import TensorFormats

@main
struct DMSurgery: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dmsurgery",
        abstract: "Surgery on diffusion-model checkpoints: inspect, verify, diff and convert weights; run UNets forward and backward.",
        discussion: """
        Every command reads safetensors files, sharded safetensors (*.safetensors.index.json), \
        diffusers model folders (config.json + weights) and '-' for standard input, and writes '-' \
        as standard output. Commands compose as pipelines.

        EXIT STATUS
          0   success
          1   the check found problems (verify: NaN/Inf or checksum mismatch; diff: the checkpoints differ)
          2   invalid or unreadable input, or an I/O error
          64  usage error
        """,
        version: "0.1.0",
        subcommands: [InspectCommand.self, VerifyCommand.self, DiffCommand.self, ConvertCommand.self, ForwardCommand.self, PruneCommand.self, BenchCommand.self, SampleCommand.self,
                      FinetuneCommand.self, EraseCommand.self, UnlearnCommand.self, WorldCommand.self, EvalCommand.self,
                      VAECommand.self, EncodePromptCommand.self]
    )

    /// The root entry: parses, runs, and turns every error into its exit status in one place
    /// (`exitError(for:)`). Interrupts remove temporary outputs unless a training loop takes them.
    /// `help` for a subcommand that does not exist is a usage error (64), not the root help.
    static func main() {
        StandardStreams.reserveClosedDescriptors()
        // `dmsurgery --version` alone answers before the parser builds its tree of every subcommand and
        // option (most of what is left of a start-up once libraries load on demand): scripts ask it often.
        if CommandLine.arguments.count == 2, CommandLine.arguments[1] == "--version" {
            do { try StandardStreams.writeOutput(configuration.version + "\n") } catch { exit(withError: exitError(for: error)) }
            exit()
        }
        TemporaryFiles.installSignalCleanup()
        if let word = HelpTopic.unknownWord(in: Array(CommandLine.arguments.dropFirst()), root: Self.self) {
            exit(withError: ValidationError("no subcommand '\(word)'; 'dmsurgery help' lists them"))
        }
        var command: ParsableCommand
        do { command = try parseAsRoot() } catch { finish(error) }
        do { try command.run() } catch { finish(exitError(for: error)) }
    }

    /// Exits for `error`. Help and version text go through `StandardStreams` like every report, so a
    /// full or closed standard output is an `io-error` (exit 2) instead of a silent 0.
    private static func finish(_ error: Error) -> Never {
        guard exitCode(for: error) == .success, String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") else {
            exit(withError: error)
        }
        let text = fullMessage(for: error)
        do { try StandardStreams.writeOutput(text.hasSuffix("\n") || text.isEmpty ? text : text + "\n") } catch {
            exit(withError: exitError(for: error))
        }
        exit()
    }
}
