import ConceptWorld
import Diffusion
import Training
import XCTest

/// The run description is what `--resume` compares: every field must be told apart, by name.
final class RunDescriptionTests: XCTestCase {
    private var base: RunDescription {
        var optimizer = OptimizerSettings()
        optimizer.batch = 2
        optimizer.ema = 0.9
        return RunDescription(command: "unlearn", optimizer: optimizer, scheduler: SchedulerConfig(), lower: LowerLevelSettings(),
                              upper: ConceptSettings(), unlearn: UnlearnSettings(),
                              inputs: .init(student: "s", teacher: "t", data: "d", forget: "f"))
    }

    /// One change per field, named as `firstDifference` names it.
    private let changes: [(field: String, change: (inout RunDescription) -> Void)] = [
        ("format", { $0.format = 1 }),
        ("command", { $0.command = "erase" }),
        ("optimizer.batch", { $0.optimizer.batch = 3 }),
        ("optimizer.lr", { $0.optimizer.lr = 2e-4 }),
        ("optimizer.warmup", { $0.optimizer.warmup = 1 }),
        ("optimizer.weightDecay", { $0.optimizer.weightDecay = 0 }),
        ("optimizer.ema", { $0.optimizer.ema = nil }),
        ("optimizer.maxGradNorm", { $0.optimizer.maxGradNorm = 0 }),
        ("optimizer.seed", { $0.optimizer.seed = 1 }),
        ("scheduler.numTrainTimesteps", { $0.scheduler.numTrainTimesteps = 500 }),
        ("scheduler.betaStart", { $0.scheduler.betaStart = 0.001 }),
        ("scheduler.betaEnd", { $0.scheduler.betaEnd = 0.012 }),
        ("scheduler.betaSchedule", { $0.scheduler.betaSchedule = .scaledLinear }),
        ("scheduler.predictionType", { $0.scheduler.predictionType = .vPrediction }),
        ("scheduler.setAlphaToOne", { $0.scheduler.setAlphaToOne = false }),
        ("scheduler.stepsOffset", { $0.scheduler.stepsOffset = 1 }),
        ("scheduler.timestepSpacing", { $0.scheduler.timestepSpacing = .trailing }),
        ("scheduler.clipSample", { $0.scheduler.clipSample = false }),
        ("scheduler.clipSampleRange", { $0.scheduler.clipSampleRange = 2 }),
        ("lower.wDiff", { $0.lower?.wDiff = 0.5 }),
        ("lower.wOut", { $0.lower?.wOut = 1 }),
        ("lower.wFeat", { $0.lower?.wFeat = 0 }),
        ("lower.minSnrGamma", { $0.lower?.minSnrGamma = 5 }),
        ("lower.uncondProb", { $0.lower?.uncondProb = 0.1 }),
        ("upper.method", { $0.upper?.method = .ablation }),
        ("upper.eta", { $0.upper?.eta = 2 }),
        ("upper.forgetSampleSteps", { $0.upper?.forgetSampleSteps = 10 }),
        ("upper.forgetGuidance", { $0.upper?.forgetGuidance = 3 }),
        ("unlearn.schedule", { $0.unlearn?.schedule = .interleaved }),
        ("unlearn.penalty.innerSteps", { $0.unlearn?.penalty?.innerSteps = 5 }),
        ("unlearn.penalty.lambda", { $0.unlearn?.penalty?.lambda = 5 }),
        ("unlearn.penalty.lambdaRamp", { $0.unlearn?.penalty?.lambdaRamp = 10 }),
        ("unlearn.upperLr", { $0.unlearn?.upperLr = 1e-3 }),
        ("unlearn.upperWarmup", { $0.unlearn?.upperWarmup = 5 }),
        ("unlearn.interleaved", { $0.unlearn?.interleaved = InterleavedSettings() }),
        ("unlearn.attack", { $0.unlearn?.attack = UpperAttackSettings() }),
        ("uce", { $0.uce = UCEPhaseSettings() }),
        ("inputs.student", { $0.inputs.student = "s2" }),
        ("inputs.initConfig", { $0.inputs.initConfig = "c" }),
        ("inputs.teacher", { $0.inputs.teacher = "t2" }),
        ("inputs.data", { $0.inputs.data = "d2" }),
        ("inputs.forget", { $0.inputs.forget = "f2" }),
        ("inputs.forgetPrompts", { $0.inputs.forgetPrompts = "p" }),
        ("inputs.retainPrompts", { $0.inputs.retainPrompts = "r" }),
    ]

    func testEveryFieldChangeIsRefusedAndNamed() {
        for (field, change) in changes {
            var other = base
            change(&other)
            XCTAssertNotEqual(base, other, field)
            XCTAssertEqual(base.firstDifference(from: other)?.field, field)
        }
        XCTAssertNil(base.firstDifference(from: base))
    }

    /// A field added to RunDescription (or to a settings value it holds) without a change above fails
    /// here, so the table stays complete; absent settings (the other schedule's) are leaves.
    func testTheTableCoversEveryField() {
        func leaves(_ value: Any, _ prefix: String) -> [String] {
            Mirror(reflecting: value).children.flatMap { child -> [String] in
                let name = prefix + (child.label ?? "?")
                var value = child.value
                let mirror = Mirror(reflecting: value)
                if mirror.displayStyle == .optional, let wrapped = mirror.children.first?.value { value = wrapped }
                return Mirror(reflecting: value).displayStyle == .struct ? leaves(value, name + ".") : [name]
            }
        }
        XCTAssertEqual(Set(leaves(base, "")), Set(changes.map(\.field)))
    }

    /// Only the chosen schedule's options are part of an unlearn run, and the upper optimizer's defaults are
    /// resolved, so an explicit `--upper-lr` equal to `--lr` is the same run.
    func testTheOtherSchedulesOptionsAreNotPartOfTheRun() {
        XCTAssertNil(base.unlearn?.interleaved)
        XCTAssertEqual(base.unlearn?.penalty, PenaltySettings())
        XCTAssertEqual(base.unlearn?.upperLr, base.optimizer.lr)
        var interleaved = UnlearnSettings()
        interleaved.schedule = .interleaved
        interleaved.penalty?.innerSteps = 3
        let run = RunDescription(command: "unlearn", optimizer: base.optimizer, scheduler: SchedulerConfig(), unlearn: interleaved,
                                 inputs: base.inputs)
        XCTAssertNil(run.unlearn?.penalty, "--inner-steps does not apply to the interleaved schedule")
        XCTAssertEqual(run.unlearn?.interleaved, InterleavedSettings())
    }

    func testTheStateFileTextRoundTrips() throws {
        var run = base
        run.scheduler = .stableDiffusion
        run.optimizer.lr = 3.3e-5
        let text = try run.json()
        XCTAssertEqual(RunDescription.read(json: text), .description(run))
        XCTAssertEqual(RunDescription.read(json: "batch=2 lr=0.0001"), .unreadable, "an old fingerprint is not a description")
        XCTAssertEqual(RunDescription.read(json: #"{"command":"erase","batch":2,"lr":0.0001}"#), .otherFormat(nil),
                       "the flat shape of format 1 is told apart")
    }

    func testTheDifferenceShowsBothValues() throws {
        var other = base
        other.scheduler.predictionType = .vPrediction
        let difference = try XCTUnwrap(base.firstDifference(from: other))
        XCTAssertEqual(difference.stored, "epsilon")
        XCTAssertEqual(difference.given, "v_prediction")
        other = base
        other.optimizer.ema = nil
        XCTAssertEqual(base.firstDifference(from: other)?.given, "none")
    }

    /// The robust upper level is part of the run only when it is on, and then by every option.
    func testTheUpperAttackIsPartOfTheRunWhenOn() throws {
        var settings = UnlearnSettings()
        settings.attack?.steps = 7
        let off = RunDescription(command: "unlearn", optimizer: base.optimizer, scheduler: SchedulerConfig(), unlearn: settings,
                                 inputs: base.inputs)
        XCTAssertNil(off.unlearn?.attack, "--attack-steps without --upper-attack is not part of the run")
        settings.attack?.kind = .adversarial
        let on = RunDescription(command: "unlearn", optimizer: base.optimizer, scheduler: SchedulerConfig(), unlearn: settings,
                                inputs: base.inputs)
        XCTAssertEqual(off.firstDifference(from: on)?.field, "unlearn.attack")
        var other = settings
        other.attack?.radius = 0.5
        let wider = RunDescription(command: "unlearn", optimizer: base.optimizer, scheduler: SchedulerConfig(), unlearn: other,
                                   inputs: base.inputs)
        XCTAssertEqual(on.firstDifference(from: wider)?.field, "unlearn.attack.radius")
        XCTAssertEqual(RunDescription.read(json: try on.json()), .description(on))
    }

    /// The robust upper level's ball is the one `eval --attack adversarial` uses.
    func testTheUpperAttackRadiusIsTheEvalAttacks() {
        XCTAssertEqual(UpperAttackSettings().radius, AttackSettings().radius)
    }
}
