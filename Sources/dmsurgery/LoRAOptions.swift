import ArgumentParser
import Surgery
import Workflows

extension LoRADialect: ExpressibleByArgument {}

/// `--delta-out FILE --rank R [--lora-format peft|kohya]` (erase, unlearn): the change as a LoRA (formats/lora.md).
struct DeltaOutOptions: ParsableArguments {
    @Option(name: .customLong("delta-out"), help: ArgumentHelp("Also write OUT's change from the input model as a LoRA (truncated SVD of each changed linear or convolution weight).", valueName: "file"))
    var deltaOut: String?

    @Option(help: "--delta-out: the LoRA's rank (each weight's SVD truncated to it).")
    var rank: Int?

    @Option(name: .customLong("lora-format"), help: "--delta-out: the key dialect, peft (diffusers' load_lora_weights) or kohya (kohya-ss, A1111, ComfyUI; default peft).")
    var loraFormat: LoRADialect?

    /// Refuses a half-given adapter and one the command could not derive (an input or OUT on a pipe).
    func check(model: String, output: String) throws {
        guard let deltaOut else {
            if rank != nil || loraFormat != nil { throw ValidationError("--rank and --lora-format go with --delta-out FILE") }
            return
        }
        guard let rank, rank >= 1 else { throw ValidationError("--delta-out needs --rank R (at least 1)") }
        guard deltaOut != "-", model != "-", output != "-" else {
            throw ValidationError("--delta-out compares OUT with the input model on disk: neither it, the model nor OUT can be standard input or output")
        }
    }

    var settings: DeltaOutSettings? {
        guard let deltaOut, let rank else { return nil }
        return DeltaOutSettings(path: deltaOut, rank: rank, dialect: loraFormat ?? DeltaOutSettings.defaultDialect)
    }
}
