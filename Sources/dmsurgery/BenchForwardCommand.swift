import ArgumentParser
import Diffusion
import Foundation
import TensorFormats
import TensorMath
import UNet
import Workflows

struct ForwardBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Time UNet inference (no tape) on random inputs and report the peak memory.",
        discussion: """
        Random inputs at the config's sample_size (or --size) and, for conditional models, 77 random \
        context tokens. The first pass is a warm-up and is not counted. --json prints one object with \
        seconds_per_forward, parameters, batch, size and peak_rss_bytes (the process's maximum resident \
        set, weights included).

        Exit status: 0 success, 2 invalid or unreadable input, 64 usage error.
        """
    )

    @OptionGroup var subject: BenchSubject

    @Option(help: "Batch size.")
    var batch = 1

    @Option(help: "Timed passes (after one warm-up pass).")
    var steps = 2

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard batch >= 1, steps >= 1 else { throw ValidationError("--batch and --steps must be at least 1") }
    }

    func run() throws {
        let setup = EngineSetup()
        setup.describe(verbose: subject.verbose, quiet: common.quiet)
        var unet = try loadUNet(model: subject.model, config: subject.config, input: subject.input)
        unet.frozenWeightTransforms = WinogradWeightCache()
        let cfg = unet.config
        let side = subject.size ?? cfg.sampleSize ?? 32
        do { try unet.checkInput(batch: batch, height: side, width: side, training: false, option: "--batch or --size") } catch let error as UNetError {
            throw located(error, file: subject.model ?? subject.config ?? "-")
        }
        var rng = NormalGenerator(seed: 0)
        let x = rng.tensor([batch, cfg.inChannels, side, side])
        let context = cfg.crossAttentionDim.map { rng.tensor([batch, 77, $0]) }
        var times: [Double] = []
        for step in 0...steps {
            let start = DispatchTime.now()
            _ = try unet(sample: x, timesteps: [Float](repeating: 500, count: batch), encoderHiddenStates: context)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
            if step > 0 { times.append(seconds) }
            note("pass \(step)\(step == 0 ? " (warm-up)" : ""): \(String(format: "%.3f", seconds)) s", quiet: common.quiet)
        }
        let mean = times.reduce(0, +) / Double(times.count)
        let peak = peakResidentBytes()
        if subject.json {
            try emit(JSONWriter.pretty(.object([
                JSONMember("seconds_per_forward", .double(mean)), JSONMember("parameters", .int(unet.parameterCount)),
                JSONMember("batch", .int(batch)), JSONMember("size", .int(side)), JSONMember("peak_rss_bytes", .int(peak)),
            ] + setup.jsonMembers)))
        } else {
            try emit(table([["seconds per forward", String(format: "%.3f", mean)],
                        ["parameters", formatCount(unet.parameterCount)],
                        ["batch", "\(batch) x \(cfg.inChannels) x \(side) x \(side)"],
                        ["peak resident memory", formatBytes(peak)]] + setup.tableRows))
        }
    }
}
