import ConceptWorld
import Diffusion
import Foundation
import TensorFormats
import TensorMath
import UNet

/// What `eval` is told, as plain values: a model or a config.json (random weights), not both.
public struct EvalSettings: Sendable {
    public var model: String?
    public var config: String?
    public var seed: UInt64 = 0
    /// Samples per prompt, DDIM steps and the grid's scale: each at least 1.
    public var samples = 8
    public var steps = 20
    public var guidance: Float = 1
    /// A PNG grid of the samples, one row per prompt.
    public var grid: String?
    public var gridScale = 4
    public var scheduler: String?
    public var json = false
    public var open = OpenOptions()
    public var force = false
    public var quiet = false

    public init(model: String?, config: String? = nil) {
        self.model = model
        self.config = config
    }
}

/// The scores and the text `eval` prints (JSON or the table).
public struct EvalOutcome {
    public let report: EvaluationReport
    public let output: String
}

/// `eval`'s body: samples every prompt of the concept world and scores them with the detectors.
public enum EvalWorkflow {
    public static func run(_ s: EvalSettings) throws -> EvalOutcome {
        let model = s.model, config = s.config, grid = s.grid, samples = s.samples, gridScale = s.gridScale
        try InputSet.declare(inputs: [(model, "MODEL"), (config, "--config"), (s.scheduler, "--scheduler")], outputs: [(grid, "--grid")])
        let source = model ?? config ?? "-"
        if grid != nil {
            // The grid's pixels, before any sampling: every prompt's samples at --grid-scale.
            let side = MemoryBudget.product([WorldSize.side, gridScale])
            try MemoryBudget.check(side.flatMap { MemoryBudget.product([WorldPrompt.all.count, samples, $0, $0, WorldSize.channels]) },
                                   for: "the PNG grid", option: "--grid-scale or --samples")
        }
        var unet = try loadUNet(model: model, config: config, open: s.open)
        unet.frozenWeightTransforms = WinogradWeightCache()
        do throws(WorldModelMismatch) {
            try Evaluation.checkFits(unet)
        } catch {
            var located = error
            located.file = source
            throw located
        }
        let schedulerConfig = try loadSchedulerConfig(model: model ?? config ?? "", explicit: s.scheduler)
        var settings = EvaluationSettings()
        settings.samples = samples
        settings.steps = s.steps
        settings.guidance = s.guidance
        settings.seed = s.seed
        let bar = ProgressBar("eval", total: WorldPrompt.all.count * samples, quiet: s.quiet)
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
            try writeBytes(png, to: grid, force: s.force)
            note("wrote \(grid): \(WorldPrompt.all.count) rows (prompts) x \(samples) samples", quiet: s.quiet)
        }
        return EvalOutcome(report: report, output: s.json ? JSONWriter.pretty(report.json) : summary(report, source: source))
    }

    public static func summary(_ r: EvaluationReport, source: String) -> String {
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
