import Foundation
import TensorFormats
import TensorMath
import UNet

/// What a progress display or log receives after each iteration.
public struct StepRecord: Sendable {
    public var step: Int
    public var total: Int
    public var report: StepReport
    public var seconds: Double
    /// The MPI world size (1 in one process).
    public var ranks = 1
    /// The held-out probe's loss after this iteration, when it measured (`TrainingLoop.heldout`).
    public var heldoutLoss: Double?
}

/// Drives a `TrainingMethod`: the random stream, the EMA, periodic and interrupt checkpoints, and
/// resuming from one. Everything that influences the weights is in the state, so a resumed run gives
/// the same bytes as an uninterrupted one.
public struct TrainingLoop {
    public var steps: Int
    public var seed: UInt64
    public var emaDecay: Float?
    /// Where the resumable state lives; nil disables checkpoints (and resume).
    public var statePath: String?
    public var checkpointEvery: Int?
    /// What shapes the run's weights; a resume from a state written by another run is refused.
    public var run: RunDescription
    /// The ranks training together: all step, only the root writes the state.
    public var parallel = DataParallel.solo
    /// Measures the student on held-out data every few iterations (the log's `heldout_loss`).
    public var heldout: HeldoutProbe?

    public init(steps: Int, seed: UInt64, emaDecay: Float?, statePath: String?, checkpointEvery: Int?, run: RunDescription) {
        self.steps = steps
        self.seed = seed
        self.emaDecay = emaDecay
        self.statePath = statePath
        self.checkpointEvery = checkpointEvery
        self.run = run
    }

    public enum Outcome {
        /// All steps done: the model to write (the EMA one when an EMA runs) and the last report.
        case finished(UNet2D, StepReport?)
        /// Stopped at `step` with the state saved (when a state path was set).
        case interrupted(step: Int)
    }

    /// Runs from step 0, or from the saved state when `resume`. `shouldStop` is polled after every
    /// iteration (a signal handler sets it); `observe` sees every iteration.
    public func run<M: TrainingMethod>(_ method: inout M, resume: Bool, shouldStop: () -> Bool,
                                       observe: (StepRecord) throws -> Void) throws -> Outcome {
        method.parallel = parallel
        var rng = TrainingRandom(seed: seed)
        var ema = emaDecay.map { ExponentialMovingAverage(decay: $0, model: method.student) }
        var step = 0
        var last: StepReport?
        if resume, let statePath {
            let state = try TrainingState(contentsOf: statePath)
            try check(state, file: statePath)
            guard let s = state.values["step"].flatMap(Int.init), let r = state.values["rng"].flatMap(UInt64.init) else {
                throw TensorFormatError(.invalidMetadata, "no step or random state", file: statePath)
            }
            guard s >= 0 else {
                throw TensorFormatError(.invalidMetadata, "the state is at step \(s), which is negative", file: statePath)
            }
            guard s <= steps else {
                throw TensorFormatError(.invalidArgument, "the state is at step \(s), past --steps \(steps)", file: statePath)
            }
            step = s
            rng.state = r
            try method.restore(from: state, file: statePath)
            if ema != nil {
                var model = method.student
                try state.restore(&model, from: "ema", file: statePath)
                ema?.shadow = model.parameters
            }
        }
        func save() throws {
            guard let statePath, parallel.isRoot else { return }
            var state = TrainingState()
            state.values["run"] = try run.json()
            state.values["step"] = String(step)
            state.values["rng"] = String(rng.state)
            try method.store(into: &state)
            if let ema { for (name, t) in ema.shadow { state.tensors["ema/\(name)"] = t } }
            try state.write(to: statePath)
        }
        let start = Date()
        while step < steps {
            if parallel.any(shouldStop()) {
                try save()
                parallel.barrier()
                return .interrupted(step: step)
            }
            let report = try method.step(step, rng: &rng)
            ema?.update(with: method.student)
            step += 1
            last = report
            var record = StepRecord(step: step, total: steps, report: report, seconds: Date().timeIntervalSince(start),
                                    ranks: parallel.size)
            if let heldout, heldout.measures(after: step, of: steps) { record.heldoutLoss = try heldout.loss(method.student) }
            try observe(record)
            if let every = checkpointEvery, step % every == 0 || step == steps { try save() }
        }
        let model = try ema?.applied(to: method.student) ?? method.student
        return .finished(model, last)
    }

    /// Refuses a state written by another run, naming the first field that differs.
    func check(_ state: TrainingState, file: String) throws {
        let stored: RunDescription
        switch state.values["run"].map(RunDescription.read(json:)) ?? .unreadable {
        case .description(let description): stored = description
        case .otherFormat(let format):
            throw TrainingError(.runMismatch, "the state's run description is format \(format ?? 1), this dmsurgery reads format \(RunDescription.format) (written by another version); start the run again without --resume", file: file)
        case .unreadable:
            throw TrainingError(.runMismatch, "the state holds no run description (written by an older dmsurgery?); start the run again", file: file)
        }
        guard stored != run else { return }
        if let (field, was, now) = stored.firstDifference(from: run) {
            throw TrainingError(.runMismatch, "the state was written by a run with \(field) \(was), this run has \(now); resume with the same options and inputs", file: file)
        }
        throw TrainingError(.runMismatch, "the state was written by another run; resume with the same options and inputs", file: file)
    }
}

/// JSON lines, one per iteration: step, the losses, lr, seconds since the run (or resume) started,
/// and the number of MPI ranks.
/// Appended to, so a resumed run continues the same file.
public final class TrainingLog {
    private let handle: FileHandle
    private let path: String

    public init(path: String) throws {
        try InputSet.declared.refuse(path, option: "--log")
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw TensorFormatError(.io, "cannot create the log file", file: path)
            }
        }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw TensorFormatError(.io, "cannot open the log file for writing", file: path)
        }
        do { try handle.seekToEnd() } catch {
            throw TensorFormatError(.io, "cannot append to the log file", file: path)
        }
        self.handle = handle
        self.path = path
    }

    public func write(_ record: StepRecord) throws {
        var fields = ["\"step\": \(record.step)"]
        for (name, value) in record.report.losses { fields.append("\"\(name)\": \(jsonNumber(value))") }
        fields.append("\"lr\": \(record.report.learningRate)")
        if let heldout = record.heldoutLoss { fields.append("\"heldout_loss\": \(jsonNumber(heldout))") }
        fields.append("\"seconds\": \(jsonNumber(record.seconds))")
        fields.append("\"ranks\": \(record.ranks)")
        do {
            try handle.write(contentsOf: Data(("{" + fields.joined(separator: ", ") + "}\n").utf8))
        } catch {
            let reason = ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError).map { String(cString: strerror(Int32($0.code))) }
            throw TensorFormatError(.io, "cannot write the log: \(reason ?? "write failed")", file: path)
        }
    }

    deinit { try? handle.close() }
}

/// A JSON number, or a string for the values JSON cannot hold ("nan", "inf", "-inf").
func jsonNumber(_ x: Double) -> String {
    if x.isNaN { return "\"nan\"" }
    if x.isInfinite { return x > 0 ? "\"inf\"" : "\"-inf\"" }
    return "\(x)"
}
