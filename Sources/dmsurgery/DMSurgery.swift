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
}
