import TensorMath
import Training
import UNet
import XCTest

/// L_featKD pairs the block outputs of a depth-pruned student with the teacher blocks they came from.
final class BlockAlignmentTests: XCTestCase {
    private func blocks(_ list: [(BlockOutput, Int)], fill: Float = 0) -> [(BlockOutput, Tensor)] {
        list.map { ($0.0, Tensor(shape: [1, 4, $0.1, $0.1], data: [Float](repeating: fill, count: 4 * $0.1 * $0.1))) }
    }

    /// A 3-stage teacher (sides after each block) and its `tiny` student (2 stages, no mid block).
    private let teacher: [(BlockOutput, Int)] = [(.down(0), 4), (.down(1), 2), (.down(2), 2), (.mid, 2), (.up(0), 4), (.up(1), 8), (.up(2), 8)]
    private let tiny: [(BlockOutput, Int)] = [(.down(0), 4), (.down(1), 4), (.up(0), 8), (.up(1), 8)]

    func testTinyStudentUpBlocksMeetTheTeacherBlocksTheyWereCopiedFromAndShapeMismatchesAreLeftOut() {
        let pairs = BlockAlignment.pairs(student: blocks(tiny), teacher: blocks(teacher))
        XCTAssertEqual(pairs.map(\.0), [.down(0), .up(0), .up(1)])
        XCTAssertEqual(pairs.map(\.1), [.down(0), .up(1), .up(2)])
    }

    func testStudentWithoutMidBlockSkipsTheMidTerm() {
        let small = teacher.filter { $0.0 != .mid }
        let pairs = BlockAlignment.pairs(student: blocks(small), teacher: blocks(teacher))
        XCTAssertEqual(pairs.map(\.0), small.map(\.0))
        XCTAssertEqual(pairs.map(\.1), small.map(\.0))
    }

    func testFeatureLossAveragesOverAlignedPairsOnly() {
        // Every aligned student block is off by 1 everywhere: each MSE is 1, so the mean is 1 whatever
        // the number of pairs, and only aligned blocks get a gradient.
        let (loss, gradients) = Losses.featureDistillation(student: blocks(tiny, fill: 1), teacher: blocks(teacher))
        XCTAssertEqual(loss, 1, accuracy: 1e-6)
        XCTAssertEqual(Set(gradients.keys), [.down(0), .up(0), .up(1)])
    }
}
