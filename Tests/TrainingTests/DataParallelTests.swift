import Diffusion
import Foundation
import TensorFormats
import TensorMath
import Training
import UNet
import XCTest

/// The sharding rule of data-parallel training, without MPI: the ranks' slices of a batch, each drawn
/// from the same stream state, put together are the single-process batch, and the stream ends in the
/// same state whatever the rank count.
final class DataParallelTests: XCTestCase {
    private func data(_ name: String, role: TrainingData.Role) throws -> TrainingData {
        let path = Fixtures.path("training/\(name).safetensors")
        return try TrainingData(checkpoint: try Checkpoint.open(path, options: OpenOptions(randomAccess: true)), file: path,
                                role: role, config: try Fixtures.model("engine/cond_small").config)
    }

    private func shards(_ ranks: Int, of batch: Int) -> [Range<Int>] {
        (0..<ranks).map { r in r * batch / ranks..<(r + 1) * batch / ranks }
    }

    func testLowerLevelSlicesJoinToTheWholeBatch() throws {
        var objective = LowerLevelObjective(schedule: try Fixtures.scheduler(prediction: .epsilon))
        objective.uncondProbability = 0.5
        let retain = try data("data", role: .data)
        for ranks in [2, 3, 6] {
            var whole = TrainingRandom(seed: 11)
            let full = objective.drawBatch(from: retain, size: 6, rng: &whole)
            var parts: [NoisedBatch] = []
            var last = TrainingRandom(seed: 0)
            for shard in shards(ranks, of: 6) {
                var rng = TrainingRandom(seed: 11)
                parts.append(objective.drawBatch(from: retain, size: 6, shard: shard, rng: &rng))
                last = rng
            }
            XCTAssertEqual(last.state, whole.state, "the stream does not depend on the rank count")
            XCTAssertEqual(parts.flatMap(\.timesteps), full.timesteps)
            XCTAssertEqual(Tensor.joined(parts.map(\.sample)).data, full.sample.data)
            XCTAssertEqual(Tensor.joined(parts.map(\.target)).data, full.target.data)
            XCTAssertEqual(Tensor.joined(parts.map { $0.cond! }).data, full.cond!.data)
        }
    }

    func testUpperLevelSlicesJoinToTheWholeBatch() throws {
        let objective = ConceptObjective(schedule: try Fixtures.scheduler(prediction: .epsilon))
        let forget = try data("forget", role: .forget)
        let teacher = try Fixtures.model("training/teacher")
        var whole = TrainingRandom(seed: 4)
        let full = try objective.drawBatch(from: forget, size: 4, teacher: teacher, rng: &whole)
        var parts: [NoisedBatch] = []
        for shard in shards(2, of: 4) {
            var rng = TrainingRandom(seed: 4)
            parts.append(try objective.drawBatch(from: forget, size: 4, shard: shard, teacher: teacher, rng: &rng))
            XCTAssertEqual(rng.state, whole.state)
        }
        XCTAssertEqual(parts.flatMap(\.timesteps), full.timesteps)
        XCTAssertEqual(Tensor.joined(parts.map(\.sample)).data, full.sample.data)
        // The teacher's targets, computed per slice, differ from the whole batch's by rounding only.
        let joined = Tensor.joined(parts.map(\.target)).data
        let scale = full.target.data.map(abs).max()!
        XCTAssertLessThanOrEqual(zip(joined, full.target.data).map { abs($0 - $1) }.max()! / scale, 1e-5)
    }

    func testOneProcessIsSolo() throws {
        XCTAssertEqual(DataParallel.solo.size, 1)
        XCTAssertEqual(DataParallel.solo.shard(of: 8), 0..<8)
        var gradients = ["w": Tensor(shape: [2], data: [1, 2])]
        DataParallel.solo.average(&gradients)
        XCTAssertEqual(gradients["w"]!.data, [1, 2])
        XCTAssertTrue(DataParallel.solo.any(true))
        XCTAssertFalse(DataParallel.solo.any(false))
    }
}
