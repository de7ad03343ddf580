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
        objective.settings.uncondProb = 0.5
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
        // The teacher's targets are computed item by item, so a slice's are the whole batch's bits.
        XCTAssertEqual(Tensor.joined(parts.map(\.target)).data, full.target.data)
    }

    func testOneProcessIsSolo() throws {
        XCTAssertEqual(DataParallel.solo.size, 1)
        XCTAssertEqual(DataParallel.solo.shard(of: 8), 0..<8)
        XCTAssertTrue(DataParallel.solo.any(true))
        XCTAssertFalse(DataParallel.solo.any(false))
    }

    /// Chunks come from the batch size and the chunk count alone: at most 8 per batch for ranks, so one
    /// process splitting the same way (`DMSURGERY_CHUNKS=8`) and 2, 4 or 8 ranks evaluate the same
    /// chunks of a batch of 32; a rank count that does not divide the chunks uses the common divisor.
    func testChunksDependOnTheBatchSizeOnly() {
        let ranksWay = DataParallel.solo.splitting(into: DataParallel.rankChunks)
        XCTAssertEqual([1, 2, 4, 6, 12, 16, 32, 64, 9].map { ranksWay.chunk(of: $0) }, [1, 1, 1, 1, 2, 2, 4, 8, 3])
        XCTAssertEqual([1, 2, 4, 6, 12, 16, 32, 64, 9].map { DataParallel.solo.splitting(into: 3).chunk(of: $0) }, [1, 1, 2, 2, 4, 8, 16, 32, 3])
    }

    /// One process evaluates a batch in one pass by default (no per-chunk cost for small models).
    func testOneProcessEvaluatesTheWholeBatchAtOnce() throws {
        try XCTSkipIf(ProcessInfo.processInfo.environment["DMSURGERY_CHUNKS"] != nil, "DMSURGERY_CHUNKS is set")
        XCTAssertEqual(DataParallel.solo.maximumChunks, 1)
        XCTAssertEqual([1, 4, 32, 9].map { DataParallel.solo.chunk(of: $0) }, [1, 4, 32, 9])
    }

    /// The batch mean is the float64 sum of the items' float32 gradients, rounded once: adding the items
    /// in another grouping (as ranks do) gives the same bits, where float32 partial sums would not.
    func testItemGradientsAreAddedInFloat64AndRoundedOnce() throws {
        let model = try Fixtures.model("engine/cond_small")
        let name = model.parameters.keys.sorted()[0]
        let shape = model.parameters[name]!.shape, n = model.parameters[name]!.count
        var rng = TrainingRandom(seed: 21)
        let items = (0..<6).map { i in Tensor(shape: shape, data: rng.tensor([n]).data.map { $0 * Float(1 << (3 * i)) }) }
        var sums = ItemSums()
        for (i, g) in items.enumerated() { sums.add([name: g], values: [Double(i)]) }
        XCTAssertEqual(sums.items, 6)
        let (gradients, values) = DataParallel.solo.mean(sums, chunks: 6, layout: model)
        XCTAssertEqual(values, [2.5])
        let expected = (0..<n).map { j in Float(items.reduce(0.0) { $0 + Double($1.data[j]) } / 6) }
        XCTAssertEqual(gradients[name]!.data, expected)
        XCTAssertEqual(gradients[name]!.shape, shape)
        // Two halves of three, then the halves: the float32 way differs somewhere, the float64 way does not.
        let halves = [0..<3, 3..<6].map { r in (0..<n).map { j in items[r].reduce(0.0) { $0 + Double($1.data[j]) } } }
        XCTAssertEqual((0..<n).map { Float((halves[0][$0] + halves[1][$0]) / 6) }, expected)
        let float32 = (0..<n).map { j in (items[0..<3].reduce(Float(0)) { $0 + $1.data[j] } + items[3..<6].reduce(Float(0)) { $0 + $1.data[j] }) / 6 }
        XCTAssertNotEqual(float32, expected)
        XCTAssertEqual(Set(gradients.keys), [name], "only parameters that have a gradient")
        var one = ItemSums()
        one.add([name: items[1]], values: [1])
        XCTAssertEqual(DataParallel.solo.mean(one, chunks: 1, layout: model).gradients[name]!.data, items[1].data)
    }
}
