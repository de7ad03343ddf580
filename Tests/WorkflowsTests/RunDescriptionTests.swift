import Diffusion
import Training
import XCTest

/// The run description is what `--resume` compares: every field must be told apart, by name.
final class RunDescriptionTests: XCTestCase {
    private var base: RunDescription {
        var run = RunDescription(command: "unlearn", batch: 2, lr: 1e-4, warmup: 0, weightDecay: 1e-2, ema: 0.9, maxGradNorm: 1,
                                 seed: 0, scheduler: SchedulerConfig(),
                                 inputs: .init(student: "s", teacher: "t", data: "d", forget: "f"))
        run.wDiff = 1; run.wOut = 2; run.wFeat = 0.1; run.uncondProb = 0
        run.method = "esd"; run.eta = 1; run.forgetSampleSteps = 25; run.forgetGuidance = 5
        run.schedule = "penalty"; run.innerSteps = 20; run.lambda = 100; run.lambdaRamp = 0; run.upperLr = 1e-4; run.upperWarmup = 0
        return run
    }

    /// One change per field, named as `firstDifference` names it.
    private let changes: [(field: String, change: (inout RunDescription) -> Void)] = [
        ("command", { $0.command = "erase" }),
        ("batch", { $0.batch = 3 }),
        ("lr", { $0.lr = 2e-4 }),
        ("warmup", { $0.warmup = 1 }),
        ("weightDecay", { $0.weightDecay = 0 }),
        ("ema", { $0.ema = nil }),
        ("maxGradNorm", { $0.maxGradNorm = 0 }),
        ("seed", { $0.seed = 1 }),
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
        ("wDiff", { $0.wDiff = 0.5 }),
        ("wOut", { $0.wOut = 1 }),
        ("wFeat", { $0.wFeat = 0 }),
        ("minSnrGamma", { $0.minSnrGamma = 5 }),
        ("uncondProb", { $0.uncondProb = 0.1 }),
        ("method", { $0.method = "ablation" }),
        ("eta", { $0.eta = 2 }),
        ("forgetSampleSteps", { $0.forgetSampleSteps = 10 }),
        ("forgetGuidance", { $0.forgetGuidance = 3 }),
        ("schedule", { $0.schedule = "interleaved" }),
        ("innerSteps", { $0.innerSteps = 5 }),
        ("lambda", { $0.lambda = 5 }),
        ("lambdaRamp", { $0.lambdaRamp = 10 }),
        ("upperLr", { $0.upperLr = 1e-3 }),
        ("upperWarmup", { $0.upperWarmup = 5 }),
        ("upperEvery", { $0.upperEvery = 3 }),
        ("initEdit", { $0.initEdit = "uce" }),
        ("uceEraseScale", { $0.uceEraseScale = 2 }),
        ("ucePreserveScale", { $0.ucePreserveScale = 2 }),
        ("uceLambda", { $0.uceLambda = 1 }),
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

    /// A field added to RunDescription without a change above fails here, so the table stays complete.
    func testTheTableCoversEveryField() {
        func leaves(_ mirror: Mirror, _ prefix: String) -> [String] {
            mirror.children.flatMap { child -> [String] in
                let name = prefix + (child.label ?? "?")
                let nested = Mirror(reflecting: child.value)
                return nested.displayStyle == .struct ? leaves(nested, name + ".") : [name]
            }
        }
        XCTAssertEqual(Set(leaves(Mirror(reflecting: base), "")), Set(changes.map(\.field)))
    }

    func testTheStateFileTextRoundTrips() throws {
        var run = base
        run.scheduler = .stableDiffusion
        run.lr = 3.3e-5
        let text = try run.json()
        XCTAssertEqual(RunDescription(json: text), run)
        XCTAssertNil(RunDescription(json: "batch=2 lr=0.0001"), "an old fingerprint is not a description")
    }

    func testTheDifferenceShowsBothValues() throws {
        var other = base
        other.scheduler.predictionType = .vPrediction
        let difference = try XCTUnwrap(base.firstDifference(from: other))
        XCTAssertEqual(difference.stored, "epsilon")
        XCTAssertEqual(difference.given, "v_prediction")
        other = base
        other.ema = nil
        XCTAssertEqual(base.firstDifference(from: other)?.given, "none")
    }
}
