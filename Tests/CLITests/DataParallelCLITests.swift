import Foundation
import TensorFormats
import XCTest

/// finetune, erase and unlearn under `mpirun -np 2` (formats/training.md, "Data-parallel training"):
/// the same weights as one process, resume across a change of rank count, faults, batch rule.
final class DataParallelCLITests: XCTestCase {
    private var directory: URL!
    private let model = CLI.fixture("engine/cond_small")
    private let teacher = CLI.fixture("training/teacher")
    private let data = CLI.fixture("training/data.safetensors")
    private let forget = CLI.fixture("training/forget.safetensors")

    override func setUpWithError() throws {
        guard try CLI.shell("command -v mpirun").status == 0 else {
            throw XCTSkip("mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)")
        }
        directory = try CLI.temporaryDirectory()
    }

    override func tearDownWithError() throws { if let directory { try? FileManager.default.removeItem(at: directory) } }

    /// Root in CI containers; more ranks than cores; no CMA single-copy (containers forbid ptrace).
    private let mpiOptions = "--allow-run-as-root --oversubscribe --mca btl_vader_single_copy_mechanism none"

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// `mpirun -np N` of the binary.
    private func mpirun(_ ranks: Int, _ arguments: String) throws -> CLIResult {
        try CLI.shell("mpirun \(mpiOptions) -np \(ranks) $DMS \(arguments)")
    }

    /// One process evaluating the ranks' chunks (`DMSURGERY_CHUNKS=8`, the ranks' default): the run that
    /// `-np N` reproduces bit for bit (by default one process evaluates a batch in one pass).
    private func single(_ arguments: String) throws -> CLIResult { try CLI.shell("DMSURGERY_CHUNKS=8 $DMS \(arguments)") }

    /// Relative max error of checkpoint `a` against `b`, per tensor: the largest over the tensors of
    /// max |a − b| / max |b| (stricter than over the whole model, where the largest weights set the scale).
    private func relativeError(_ a: String, _ b: String) throws -> Float {
        let x = try Checkpoint.open(a), y = try Checkpoint.open(b)
        XCTAssertEqual(x.entries.map(\.name), y.entries.map(\.name))
        var worst: Float = 0
        for entry in y.entries {
            let p = try x.floats(named: entry.name), q = try y.floats(of: entry)
            XCTAssertEqual(p.count, q.count, entry.name)
            let difference = zip(p, q).map { abs($0 - $1) }.max() ?? 0
            worst = max(worst, difference / max(q.map(abs).max() ?? 0, 1e-12))
        }
        return worst
    }

    private func logLines(_ file: String) throws -> [[String: Any]] {
        try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    private var commands: [(name: String, arguments: String)] {
        [("finetune", "finetune \(model) OUT --teacher \(teacher) --data \(data) --seed 5"),
         ("erase", "erase \(model) OUT --teacher \(teacher) --forget \(forget) --seed 6"),
         ("unlearn", "unlearn \(model) OUT --teacher \(teacher) --data \(data) --forget \(forget) --inner-steps 2 --seed 7"),
         ("interleaved", "unlearn \(model) OUT --teacher \(teacher) --data \(data) --forget \(forget) --schedule interleaved --upper-every 2 --seed 8"),
         // The robust upper level: every rank refreshes the offset on the whole batch.
         ("robust", "unlearn \(model) OUT --teacher \(teacher) --data \(data) --forget \(forget) --schedule interleaved --upper-every 4 --upper-attack adversarial --attack-every 2 --attack-steps 1 --seed 9")]
    }

    func testTwoRanksGiveTheSingleProcessWeightsPerTensorForFinetuneEraseAndBothUnlearnSchedules() throws {
        for (name, arguments) in commands {
            let one = path("\(name)-1.safetensors"), two = path("\(name)-2.safetensors")
            let common = "--steps 20 --batch 4 --ema 0.9 -q"
            let a = try single(arguments.replacingOccurrences(of: "OUT", with: one) + " \(common) --log \(one).log")
            XCTAssertEqual(a.status, 0, a.stderr)
            let b = try mpirun(2, arguments.replacingOccurrences(of: "OUT", with: two) + " \(common) --log \(two).log")
            XCTAssertEqual(b.status, 0, b.stderr)
            XCTAssertLessThanOrEqual(try relativeError(two, one), 1e-5, name)
            // One log, written by rank 0: every line says how many ranks, the losses are global.
            let oneLog = try logLines(one + ".log"), twoLog = try logLines(two + ".log")
            XCTAssertEqual(twoLog.count, 20, name)
            XCTAssertEqual(Set(twoLog.compactMap { $0["ranks"] as? Int }), [2], name)
            XCTAssertEqual(Set(oneLog.compactMap { $0["ranks"] as? Int }), [1], name)
            let key = ["finetune": "loss", "erase": "l_cu"][name] ?? "l_ft"
            for (p, q) in zip(oneLog, twoLog) {
                let x = try XCTUnwrap(p[key] as? Double), y = try XCTUnwrap(q[key] as? Double)
                XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(x)), "\(name) \(key)")
            }
            // Only the output and its log: rank 1 wrote nothing, no state without --checkpoint-every.
            let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix("\(name)-2") }
            XCTAssertEqual(Set(files), ["\(name)-2.safetensors", "\(name)-2.safetensors.log"], name)
        }
    }

    /// A batch of 16 is evaluated in 8 chunks of 2 items (DataParallel.chunk), by one process and by
    /// each of two ranks alike.
    func testChunksOfSeveralItemsGiveTheSingleProcessWeightsPerTensor() throws {
        let arguments = "erase \(model) OUT --teacher \(teacher) --forget \(forget) --seed 10 --steps 6 --batch 16 -q"
        let one = path("one.safetensors"), two = path("two.safetensors")
        let a = try single(arguments.replacingOccurrences(of: "OUT", with: one))
        XCTAssertEqual(a.status, 0, a.stderr)
        let b = try mpirun(2, arguments.replacingOccurrences(of: "OUT", with: two))
        XCTAssertEqual(b.status, 0, b.stderr)
        XCTAssertLessThanOrEqual(try relativeError(two, one), 1e-5)
    }

    /// Three ranks of two items each: a rank count whose all-reduce adds three partial sums.
    func testThreeRanksGiveTheSingleProcessWeightsPerTensor() throws {
        let arguments = "unlearn \(model) OUT --teacher \(teacher) --data \(data) --forget \(forget) --inner-steps 1 --seed 9 --steps 6 --batch 6 -q"
        let one = path("one.safetensors"), three = path("three.safetensors")
        let a = try single(arguments.replacingOccurrences(of: "OUT", with: one))
        XCTAssertEqual(a.status, 0, a.stderr)
        let b = try mpirun(3, arguments.replacingOccurrences(of: "OUT", with: three))
        XCTAssertEqual(b.status, 0, b.stderr)
        XCTAssertLessThanOrEqual(try relativeError(three, one), 1e-5)
    }

    func testResumeAcrossAChangeOfRankCountGivesTheUninterruptedWeights() throws {
        let base = "unlearn \(model) OUT --teacher \(teacher) --data \(data) --forget \(forget) --inner-steps 2 --batch 4 --seed 3 -q"
        func args(_ out: String, _ extra: String) -> String { base.replacingOccurrences(of: "OUT", with: out) + " " + extra }
        let full = path("full.safetensors")
        XCTAssertEqual(try single(args(full, "--steps 12")).status, 0)

        let twoThenOne = path("a.safetensors")
        let first = try mpirun(2, args(twoThenOne, "--steps 6 --checkpoint-every 6"))
        XCTAssertEqual(first.status, 0, first.stderr)
        let resumed = try single(args(twoThenOne, "--steps 12 --resume"))
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertLessThanOrEqual(try relativeError(twoThenOne, full), 1e-5, "-np 2 then one process")

        let oneThenTwo = path("b.safetensors")
        XCTAssertEqual(try single(args(oneThenTwo, "--steps 6 --checkpoint-every 6")).status, 0)
        let second = try mpirun(2, args(oneThenTwo, "--steps 12 --resume"))
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertLessThanOrEqual(try relativeError(oneThenTwo, full), 1e-5, "one process then -np 2")
    }

    func testBadInputOnOneRankStopsTheJobWithoutOutput() throws {
        let out = path("out.safetensors")
        let bad = CLI.fixture("training/bad/nan.safetensors")
        // Rank 1 alone reads a broken data file (as with a node whose copy is damaged).
        let r = try CLI.shell("""
            mpirun \(mpiOptions) -np 2 bash -c \
              'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then d=\(bad); else d=\(data); fi; exec $DMS finetune \(model) \(out) --teacher \(teacher) --data $d --batch 2 --steps 50 --log \(out).log'
            """)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("dmsurgery: error: \(bad)"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".tmp.dmsurgery") }, [])
    }

    func testAKilledRankStopsTheJobWithoutOutput() throws {
        let out = path("out.safetensors")
        let r = try CLI.shell("""
            mpirun \(mpiOptions) -np 2 bash -c \
              'echo $$ > \(directory.path)/rank$OMPI_COMM_WORLD_RANK.pid; exec $DMS finetune \(model) \(out) --teacher \(teacher) --data \(data) --batch 2 --steps 100000 --log \(out).log -q' &
            pid=$!
            until [ -s \(out).log ] || ! kill -0 $pid 2>/dev/null; do sleep 0.05; done
            kill -9 $(cat \(directory.path)/rank1.pid); wait $pid; echo "status $?"
            """)
        XCTAssertFalse(r.stdout.isEmpty)
        XCTAssertFalse(String(decoding: r.stdout, as: UTF8.self).contains("status 0"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    /// SIGINT to mpirun: it sends the ranks SIGTERM `odls_base_sigkill_timeout` seconds later (1 s by
    /// default, too short for a debug build's step) and exits 1 whatever they return (Open MPI 4.1's
    /// fixed code, formats/training.md, Signals); rank 0 alone saves the state, once.
    func testInterruptingMpirunSavesTheStateOnceFromRankZero() throws {
        let base = "finetune \(model) OUT --teacher \(teacher) --data \(data) --batch 4 --seed 2 -q"
        let part = path("part.safetensors")
        let r = try CLI.shell("""
            mpirun \(mpiOptions) --mca odls_base_sigkill_timeout 10 -np 2 $DMS \
              \(base.replacingOccurrences(of: "OUT", with: part)) --steps 100000 --log \(part).log &
            pid=$!
            until [ -s \(part).log ] || ! kill -0 $pid 2>/dev/null; do sleep 0.05; done
            sleep 0.3; kill -INT $pid; wait $pid; echo "status $?"
            """)
        XCTAssertTrue(String(decoding: r.stdout, as: UTF8.self).contains("status 1\n"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: part), "no output after an interrupt")
        // The log and the state, nothing else: no rank wrote a second state or a temporary file.
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: directory.path)),
                       ["part.safetensors.log", "part.safetensors.state.safetensors"])
        let state = try Checkpoint.open(part + ".state.safetensors")
        let saved = try XCTUnwrap(state.metadata?["dmsurgery.state"])
        let values = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(saved.utf8)) as? [String: String])
        let step = try XCTUnwrap(values["step"].flatMap(Int.init))
        // The log ends at the saved step: both ranks stopped at the same one.
        XCTAssertEqual(try logLines(part + ".log").last?["step"] as? Int, step)
        // Resumed in one process, it ends where an uninterrupted run of as many steps ends.
        let full = path("full.safetensors")
        XCTAssertEqual(try single(base.replacingOccurrences(of: "OUT", with: full) + " --steps \(step + 3)").status, 0)
        let resumed = try single(base.replacingOccurrences(of: "OUT", with: part) + " --steps \(step + 3) --resume")
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertLessThanOrEqual(try relativeError(part, full), 1e-5)
    }

    /// SIGUSR1 reaches the ranks as is (mpirun forwards it without a kill): they stop at the same step,
    /// rank 0 saves the state, and they exit 138.
    func testSIGUSR1ToMpirunCheckpointsAndStops() throws {
        let part = path("part.safetensors")
        let r = try CLI.shell("""
            mpirun \(mpiOptions) -np 2 $DMS finetune \(model) \(part) --teacher \(teacher) --data \(data) --batch 2 \
              --steps 100000 --log \(part).log -q &
            pid=$!
            until [ -s \(part).log ] || ! kill -0 $pid 2>/dev/null; do sleep 0.05; done
            kill -USR1 $pid; wait $pid; echo "status $?"
            """)
        XCTAssertTrue(String(decoding: r.stdout, as: UTF8.self).contains("status 138"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: part))
        let state = try Checkpoint.open(part + ".state.safetensors")
        let values = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(XCTUnwrap(state.metadata?["dmsurgery.state"]).utf8)) as? [String: String])
        XCTAssertEqual(try logLines(part + ".log").last?["step"] as? Int, values["step"].flatMap(Int.init))
    }

    func testABatchThatTheRanksDoNotDivideIsAUsageError() throws {
        let r = try mpirun(2, "finetune \(model) \(path("out.safetensors")) --data \(data) --batch 3 --steps 1")
        XCTAssertEqual(r.status, 64, r.stderr)
        XCTAssertTrue(r.stderr.contains("multiple of the 2 MPI ranks"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("out.safetensors")))
    }
}
