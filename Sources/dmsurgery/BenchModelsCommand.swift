import ArgumentParser
import CLIP
import Diffusion
import Foundation
import TensorFormats
import TensorMath
import VAE
import Workflows

/// Median seconds of `steps` timed runs of `body` after one warm-up run.
func medianSeconds(steps: Int, quiet: Bool, _ body: () throws -> Void) rethrows -> Double {
    var times: [Double] = []
    for step in 0...steps {
        let start = DispatchTime.now()
        try body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        if step > 0 { times.append(seconds) }
        note("pass \(step)\(step == 0 ? " (warm-up)" : ""): \(String(format: "%.3f", seconds)) s", quiet: quiet)
    }
    times.sort()
    return times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
}

struct TextEncoderBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "text-encoder",
        abstract: "Time a CLIP text encoder forward on BATCH prompts of the tokenizer length (77).",
        discussion: "Prints the median seconds per forward and the peak resident memory (JSON with --json)."
    )

    @Argument(help: "Text encoder folder (or a pipeline folder: its text_encoder/).") var model: String
    @Option(help: "Prompts per forward.") var batch = 1
    @Option(help: "Timed passes (after one warm-up pass).") var steps = 5
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard (1...1024).contains(batch), (1...1000).contains(steps) else { throw ValidationError("--batch in 1...1024, --steps in 1...1000") }
    }

    func run() throws {
        let encoder = try CLIPTextModel(path: PipelineParts(model).part("text_encoder") ?? model)
        let length = min(77, encoder.config.maxPositions)
        let vocabulary = Int32(encoder.config.vocabularySize)
        let ids = (0..<batch).map { b in (0..<length).map { Int32((b * 7919 + $0 * 104_729) % Int(vocabulary)) } }
        let median = try medianSeconds(steps: steps, quiet: common.quiet) { _ = try encoder.forward(ids) }
        try report(median: median, shape: "\(batch) x \(length) tokens", json: json)
    }
}

struct VAEBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vae",
        abstract: "Time an AutoencoderKL decode (or encode) of one image at SIZE x SIZE pixels.",
        discussion: "Prints the median seconds and the peak resident memory (JSON with --json)."
    )

    @Argument(help: "VAE folder (or a pipeline folder: its vae/).") var model: String
    @Option(help: "Image side in pixels.") var size = 512
    @Flag(help: "Time encode instead of decode.") var encode = false
    @Option(help: "Timed passes (after one warm-up pass).") var steps = 3
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard (8...4096).contains(size), (1...1000).contains(steps) else { throw ValidationError("--size in 8...4096, --steps in 1...1000") }
    }

    func run() throws {
        let vae = try AutoencoderKL(path: PipelineParts(model).vae)
        var rng = NormalGenerator(seed: 0)
        let f = vae.config.downscale
        let median: Double
        if encode {
            let images = rng.tensor([1, vae.config.inChannels, size, size])
            median = try medianSeconds(steps: steps, quiet: common.quiet) { _ = try vae.encode(images) }
        } else {
            let latents = rng.tensor([1, vae.config.latentChannels, size / f, size / f])
            median = try medianSeconds(steps: steps, quiet: common.quiet) { _ = try vae.decode(latents) }
        }
        try report(median: median, shape: "1 x \(size) x \(size) \(encode ? "encode" : "decode")", json: json)
    }
}

private func report(median: Double, shape: String, json: Bool) throws {
    let peak = peakResidentBytes()
    if json {
        try emit(JSONWriter.pretty(.object([JSONMember("median_seconds", .double(median)), JSONMember("peak_rss_bytes", .int(peak))])))
    } else {
        try emit(table([["median seconds", String(format: "%.3f", median)], ["input", shape], ["peak resident memory", formatBytes(peak)]]))
    }
}
