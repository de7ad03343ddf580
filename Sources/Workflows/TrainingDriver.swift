import Diffusion
import Foundation
import TensorFormats
import Training
import UNet
#if canImport(Glibc)
import Glibc
#endif

/// A command stopped by a signal after saving what lets it continue; the CLI exits 128 + `signal`.
public struct Interrupted: Error, Sendable {
    public var signal: Int32
}

/// Set from a signal handler while a training command runs its loop and writes its output; the loop
/// saves its state and stops, an output being written is completed first.
final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    /// Armed from the start: a signal while the models and data load is held until the loop, which
    /// then saves a resumable state at step 0 instead of exiting with nothing to resume.
    private var armed = true
    private var received: Int32?
    private var checkpointSignal: DispatchSourceSignal?

    /// Installs the handler: while armed, SIGINT/SIGTERM/SIGHUP only set the request.
    init() {
        TemporaryFiles.installSignalCleanup { [self] sig in
            lock.lock(); defer { lock.unlock() }
            guard armed else { return false }
            received = sig
            return true
        }
    }

    var signal: Int32? {
        lock.lock(); defer { lock.unlock() }
        return received
    }

    /// Under mpirun, SIGUSR1 too: mpirun forwards it to every rank as is, whereas it turns SIGINT and
    /// SIGTERM into a kill one second later, too soon for a long step to end and its state to be saved.
    func listenForSIGUSR1() {
        Files.ignore(signal: SIGUSR1)
        let source = DispatchSource.makeSignalSource(signal: SIGUSR1, queue: .global())
        source.setEventHandler { [self] in
            lock.lock(); defer { lock.unlock() }
            if armed { received = SIGUSR1 }
        }
        source.resume()
        checkpointSignal = source
    }

    func arm(_ on: Bool) {
        lock.lock(); defer { lock.unlock() }
        armed = on
    }
}

/// Runs a training method with the shared settings: progress, log, checkpoints, resume, signals, and
/// the output checkpoint with `dmsurgery.training` metadata. A signal while OUT is written lets the
/// write finish (OUT is complete, nothing is lost) and then stops with 128 + the signal.
func train<M: TrainingMethod>(_ method: inout M, run: RunDescription, settings: TrainingSettings, source: ModelOrigin,
                              output: OutputSettings, stop: StopRequest, open: OpenOptions) throws {
    let command = run.command
    // The data's sides are checked against the model when it is read; this bounds the batch's memory.
    let config = method.student.config
    let factor = config.downsampleFactor
    let side = ((config.sampleSize ?? 32) + factor - 1) / factor * factor
    do { try method.student.checkInput(batch: settings.optimizer.batch, height: side, width: side, training: true, option: "--batch") } catch let error as UNetError {
        throw located(error, file: output.path)
    }
    try TrainingMemoryPlan.checkOptimizerFits(method.student, batch: settings.optimizer.batch, side: side)
    let statePath = settings.statePath(output: output.path)
    if settings.resume, let statePath, !FileManager.default.fileExists(atPath: statePath) {
        throw TensorFormatError(.notFound, "no resumable state (run with --checkpoint-every, or interrupt a run, first)", file: statePath)
    }
    let parallel = DataParallel.current ?? .solo
    let quiet = output.quiet || !parallel.isRoot
    var loop = TrainingLoop(steps: settings.steps, seed: settings.optimizer.seed, emaDecay: settings.optimizer.ema, statePath: statePath,
                            checkpointEvery: settings.checkpointEvery, run: run)
    loop.parallel = parallel
    if let heldout = settings.heldout {
        let (data, _) = try loadTrainingData(heldout, role: .data, model: method.student, open: open)
        loop.heldout = HeldoutProbe(data: data, schedule: NoiseSchedule(run.scheduler), every: settings.heldoutEvery)
    }
    if parallel.size > 1 { stop.listenForSIGUSR1() }
    let log = parallel.isRoot ? try settings.log.map { try TrainingLog(path: $0) } : nil
    let bar = ProgressBar(command, total: settings.steps, quiet: quiet)
    stop.arm(true)
    defer { stop.arm(false) }
    let outcome = try loop.run(&method, resume: settings.resume, shouldStop: { stop.signal != nil }) { record in
        try log?.write(record)
        bar.update(steps: record.step, detail: record.report.losses.map { "\($0.name) \(formatNumber($0.value))" }.joined(separator: " "))
    }
    bar.finish()
    switch outcome {
    case .interrupted(let step):
        note(statePath.map { "interrupted at step \(step); state saved to \($0), continue with --resume" } ?? "interrupted at step \(step)", quiet: quiet)
        TemporaryFiles.removeAll()
        parallel.finish()
        throw Interrupted(signal: stop.signal ?? SIGINT)
    case .finished(let model, let last):
        // Every rank has finished before the root writes; the others write nothing.
        parallel.barrier()
        guard parallel.isRoot else { return parallel.finish() }
        var metadata = source.metadata
        let losses: [JSONMember] = (last?.losses ?? []).map {
            JSONMember($0.name, $0.value.isFinite ? .number("\($0.value)") : .string(formatNumber($0.value)))
        }
        let options = (try? JSONParser.parse(try run.json())) ?? .object([])
        metadata[trainingMetadataKey] = JSONWriter.compact(.object([
            JSONMember("command", .string(command)), JSONMember("steps", .number(String(settings.steps))),
            JSONMember("seed", .number(String(settings.optimizer.seed))), JSONMember("options", options),
            JSONMember("losses", .object(losses)),
        ]))
        try model.write(to: output.path, configJSON: source.configJSON, metadata: metadata, force: output.force)
        let summary = (last?.losses ?? []).map { "\($0.name) \(formatNumber($0.value))" }.joined(separator: ", ")
        parallel.finish()
        if stop.signal != nil {
            // Every step ran and OUT is complete: the run is done, so it exits 0 and says so (a 130 would
            // read as an interrupted run, and there is nothing left to resume).
            note("a signal arrived while \(output.path) was written; it was completed first and the run is done", quiet: quiet)
        }
        note("\(command): \(settings.steps) steps, \(summary); wrote \(output.path)", quiet: quiet)
    }
}

/// Refuses binary output to a terminal before any training time is spent.
func checkOutputTarget(_ output: OutputSettings) throws {
    if output.path == "-" && !output.force && isatty(STDOUT_FILENO) == 1 {
        throw TensorFormatError(.terminalOutput, "refusing to write a checkpoint to a terminal (use --force or redirect)", file: "-")
    }
}
