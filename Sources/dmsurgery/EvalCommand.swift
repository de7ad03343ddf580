import ArgumentParser
import ConceptWorld
import Diffusion
import Foundation
import TensorFormats
import TensorMath
import UNet
import Workflows

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score a model on the concept world: forget rate, retain accuracy, held-out loss.",
        discussion: """
        Samples every prompt of the world (`dmsurgery world --prompts`) --samples times with DDIM \
        (eta 0, the model's scheduler_config.json or --scheduler) and reads each sample with the \
        hand-written colour, shape and style detectors. forget_rate: share of forget-prompt samples \
        in the forget style. retain_accuracy: share of retain-prompt samples with the prompted shape, \
        colour and style. heldout_loss: denoising MSE on held-out retain renders at fixed noise and \
        timesteps (independent of --seed). detector_accuracy: the detectors on fresh ground-truth \
        renders; below 95% the scores are not trusted (a warning, and detectors_trusted false). Works \
        for pruned checkpoints; a model whose channels or context width do not fit the world is \
        refused. See formats/concept-world.md.

        Exit status: 0 success, 2 invalid or unfitting model, 64 usage error.
        """
    )

    @Argument(help: "Model: a diffusers folder, a checkpoint with dmsurgery.config metadata, or -.")
    var model: String?

    @Option(help: "Evaluate random weights built from this config.json instead of a model (a floor).")
    var config: String?

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    @Option(help: "Seed of the sampling noise.")
    var seed: UInt64 = 0

    @Option(help: "Samples per prompt.")
    var samples = 8

    @Option(help: "DDIM steps.")
    var steps = 20

    @Option(help: "Classifier-free guidance scale with the empty prompt (1: conditional model alone).")
    var guidance: Float = 1

    @Option(help: "Write the samples as a PNG grid, one row per prompt.")
    var grid: String?

    @Option(help: "Pixels per image pixel in the grid.")
    var gridScale = 4

    @Option(help: "scheduler_config.json to use instead of the model's.")
    var scheduler: String?

    @OptionGroup var input: InputOptions
    @OptionGroup var binary: BinaryOutputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard (model == nil) != (config == nil) else { throw ValidationError("give a MODEL or --config, not both") }
        guard samples >= 1, steps >= 1, gridScale >= 1 else { throw ValidationError("--samples, --steps and --grid-scale must be at least 1") }
        guard guidance.isFinite else { throw ValidationError("--guidance must be a number") }
    }

    func run() throws {
        try InputSet.declare(inputs: [(model, "MODEL"), (config, "--config"), (scheduler, "--scheduler")], outputs: [(grid, "--grid")])
        let source = model ?? config ?? "-"
        if grid != nil {
            // The grid's pixels, before any sampling: every prompt's samples at --grid-scale.
            let side = MemoryBudget.product([WorldSize.side, gridScale])
            try MemoryBudget.check(side.flatMap { MemoryBudget.product([WorldPrompt.all.count, samples, $0, $0, WorldSize.channels]) },
                                   for: "the PNG grid", option: "--grid-scale or --samples")
        }
        var unet = try loadUNet(model: model, config: config, input: input)
        unet.frozenWeightTransforms = WinogradWeightCache()
        do throws(WorldModelMismatch) {
            try Evaluation.checkFits(unet)
        } catch {
            var located = error
            located.file = source
            throw located
        }
        let schedulerConfig = try loadSchedulerConfig(model: model ?? config ?? "", explicit: scheduler)
        var settings = EvaluationSettings()
        settings.samples = samples
        settings.steps = steps
        settings.guidance = guidance
        settings.seed = seed
        let bar = ProgressBar("eval", total: WorldPrompt.all.count * samples, quiet: common.quiet)
        let report: EvaluationReport
        do {
            report = try Evaluation.evaluate(unet, scheduler: schedulerConfig, settings: settings) { stage, done, _ in
                if stage == "sampling" { bar.update(done) }
            }
        } catch let error as UNetError {
            throw located(error, file: source)
        }
        bar.finish()
        if !report.detectorsTrusted {
            StandardStreams.writeError("dmsurgery: warning: a detector is below \(Int(EvaluationReport.requiredDetectorAccuracy * 100))% on ground-truth renders (minimum \(formatNumber(report.detectorAccuracy.minimum))): the scores are not trusted\n")
        }
        if let grid {
            let png = try PNGImage.grid(report.images, columns: samples, scale: gridScale)
            try writeBytes(png, to: grid, force: binary.force)
            note("wrote \(grid): \(WorldPrompt.all.count) rows (prompts) x \(samples) samples", quiet: common.quiet)
        }
        if json {
            try emit(JSONWriter.pretty(report.json))
        } else {
            try emit(summary(report, source: source))
        }
    }

    private func summary(_ r: EvaluationReport, source: String) -> String {
        func pct(_ x: Double) -> String { x.isNaN ? "n/a" : String(format: "%.1f%%", x * 100) }
        let a = r.detectorAccuracy
        return table([
            ["model", source],
            ["forget_rate", "\(pct(r.forgetRate))  (\(r.forgetSamples) forget-prompt samples, style '\(WorldStyle.forget.rawValue)')"],
            ["retain_accuracy", "\(pct(r.retainAccuracy))  (colour \(pct(r.retainColour)), shape \(pct(r.retainShape)), style \(pct(r.retainStyle)); \(r.retainSamples) samples)"],
            ["heldout_loss", "\(formatNumber(r.heldoutLoss))  (\(r.heldoutImages) held-out renders)"],
            ["forget_content", "\(pct(r.forgetContent))  (colour and shape right on forget prompts)"],
            ["forget_styles", r.forgetStyles.map { "\($0.style) \($0.count)" }.joined(separator: ", ")],
            ["detectors", "colour \(pct(a.colour)), shape \(pct(a.shape)), style \(pct(a.style)) on \(a.images) renders\(r.detectorsTrusted ? "" : "  NOT TRUSTED")"],
            ["sampling", "\(r.settings.samples) per prompt, \(r.settings.steps) DDIM steps, guidance \(formatNumber(Double(r.settings.guidance))), seed \(r.settings.seed)"],
            ["seconds", String(format: "%.1f", r.seconds)],
        ])
    }
}
