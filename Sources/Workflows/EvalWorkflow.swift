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
    /// Which concepts are scored as forgotten (`--concept`).
    public var concept: WorldConcept = .style
    /// `--attack`: robustness attacks run after the evaluation, in this order.
    public var attacks: [AttackKind] = []
    public var attack = AttackSettings()
    /// `--teacher`: the model whose samples are the adversarial attack's targets.
    public var teacher: String?
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
    public let attacks: [AttackReport]
    public let output: String
}

/// `eval`'s body: samples every prompt of the concept world and scores them with the detectors.
public enum EvalWorkflow {
    public static func run(_ s: EvalSettings) throws -> EvalOutcome {
        let model = s.model, config = s.config, grid = s.grid, samples = s.samples, gridScale = s.gridScale
        try InputSet.declare(inputs: [(model, "MODEL"), (config, "--config"), (s.scheduler, "--scheduler"), (s.teacher, "--teacher")],
                             outputs: [(grid, "--grid")])
        let source = model ?? config ?? "-"
        // The samples themselves, before anything is counted with them (a product that overflows traps).
        try MemoryBudget.check(MemoryBudget.product([s.concept.prompts.count, samples, WorldSize.channels, WorldSize.side, WorldSize.side,
                                                     MemoryLayout<Float>.size]),
                               for: "\(samples) samples per prompt", option: "--samples")
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
            throw error.inFile(source)
        }
        let schedulerConfig = try loadSchedulerConfig(model: model ?? config ?? "", explicit: s.scheduler)
        var settings = EvaluationSettings()
        settings.samples = samples
        settings.steps = s.steps
        settings.guidance = s.guidance
        settings.seed = s.seed
        settings.concept = s.concept
        let teacher = try s.teacher.map { path in
            let t = try loadUNet(model: path, config: nil, open: s.open)
            do throws(WorldModelMismatch) {
                try Evaluation.checkFits(t)
            } catch {
                throw error.inFile(path)
            }
            return t
        }
        let bar = ProgressBar("eval", total: s.concept.prompts.count * samples, quiet: s.quiet)
        let report: EvaluationReport
        do {
            report = try Evaluation.evaluate(unet, scheduler: schedulerConfig, settings: settings) { stage, done, _ in
                if stage == "sampling" { bar.update(done) }
            }
        } catch let error as UNetError {
            throw located(error, file: source)
        }
        bar.finish()
        var attacks: [AttackReport] = []
        for kind in s.attacks {
            note("attack: \(kind.rawValue)", quiet: s.quiet)
            do {
                switch kind {
                case .paraphrase:
                    attacks.append(try Attack.paraphrase(unet, scheduler: schedulerConfig, settings: settings))
                case .adversarial:
                    var t = teacher
                    t?.frozenWeightTransforms = WinogradWeightCache()
                    attacks.append(try Attack.adversarial(unet, scheduler: schedulerConfig, settings: settings, attack: s.attack, teacher: t))
                }
            } catch let error as UNetError {
                throw located(error, file: source)
            }
        }
        if !report.detectorsTrusted {
            StandardStreams.writeError("dmsurgery: warning: a detector is below \(Int(EvaluationReport.requiredDetectorAccuracy * 100))% on ground-truth renders (minimum \(formatNumber(report.detectorAccuracy.minimum))): the scores are not trusted\n")
        }
        if let grid {
            let png = try PNGImage.grid(report.images, columns: samples, scale: gridScale)
            try writeBytes(png, to: grid, force: s.force)
            note("wrote \(grid): \(s.concept.prompts.count) rows (prompts) x \(samples) samples", quiet: s.quiet)
        }
        let output = s.json ? JSONWriter.pretty(json(report, attacks: attacks)) : summary(report, source: source) + attackSummary(attacks)
        return EvalOutcome(report: report, attacks: attacks, output: output)
    }

    /// The report's JSON with, when attacks ran, `attacks`: one object per attack kind.
    public static func json(_ report: EvaluationReport, attacks: [AttackReport]) -> JSONValue {
        guard !attacks.isEmpty, case .object(var members) = report.json else { return report.json }
        members.insert(JSONMember("attacks", .object(attacks.map { JSONMember($0.kind.rawValue, $0.json) })), at: members.count - 1)
        return .object(members)
    }

    static func attackSummary(_ attacks: [AttackReport]) -> String {
        guard !attacks.isEmpty else { return "" }
        func pct(_ x: Double) -> String { x.isNaN ? "n/a" : String(format: "%.1f%%", x * 100) }
        return "\n" + table(attacks.map { a in
            var detail = "\(a.samples) samples"
            if a.kind == .paraphrase {
                detail += "; " + a.paraphrases.map { "\($0.token) for \($0.concept.token), cosine \(String(format: "%.3f", $0.cosine))" }.joined(separator: ", ")
            }
            if let before = a.lossBefore, let after = a.lossAfter, let shift = a.meanShift, let settings = a.attack {
                detail += "; loss \(formatNumber(before)) -> \(formatNumber(after)), mean shift \(String(format: "%.3f", shift)) (radius \(formatNumber(Double(settings.radius))), \(settings.steps) steps)"
            }
            return ["attack \(a.kind.rawValue)", "forget_rate \(pct(a.forgetRate))  (\(detail))"]
        })
    }

    public static func summary(_ r: EvaluationReport, source: String) -> String {
        func pct(_ x: Double) -> String { x.isNaN ? "n/a" : String(format: "%.1f%%", x * 100) }
        let a = r.detectorAccuracy
        return table([
            ["model", source],
            ["forget_rate", "\(pct(r.forgetRate))  (\(r.forgetSamples) forget-prompt samples; " + r.forgetRates.map { "\($0.concept.rawValue) '\($0.concept.token)' \(pct($0.rate))" }.joined(separator: ", ") + ")"],
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
