import Foundation
import TensorFormats
import UNet
import Workflows
import XCTest

/// `TrainingMemoryPlan`'s choices: a teacher keeps its file's 16-bit dtype, a small float32 one stays
/// float32; a small student recomputes activations only when its tape would not fit a quarter of memory.
final class TrainingMemoryPlanTests: XCTestCase {
    private static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    private func fixture(_ path: String) -> String { Self.repository.appendingPathComponent("fixtures/" + path).path }

    override func tearDown() { unsetenv("DMSURGERY_MEMORY_LIMIT") }

    private func file(dtype: DType, count: Int) throws -> Checkpoint {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dms-plan-\(UUID().uuidString).safetensors").path
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        let bytes = [UInt8](repeating: 0, count: count * dtype.byteCount(elements: 1)!)
        try SafetensorsWriter.write([(name: "w", dtype: dtype, shape: [count], bytes: bytes)], metadata: nil, to: path)
        return try Checkpoint.open(path, options: OpenOptions(randomAccess: true))
    }

    func testTeacherKeepsItsFilesSixteenBitDtype() throws {
        XCTAssertEqual(TrainingMemoryPlan.teacherStorage(for: try file(dtype: .f16, count: 8)), .float16)
        XCTAssertEqual(TrainingMemoryPlan.teacherStorage(for: try file(dtype: .bf16, count: 8)), .bfloat16)
    }

    func testSmallFloatTeacherStaysFloat32() throws {
        XCTAssertEqual(TrainingMemoryPlan.teacherStorage(for: try file(dtype: .f32, count: 8)), .float32)
        let teacher = try Checkpoint.open(fixture("training/teacher"), options: OpenOptions(randomAccess: true))
        XCTAssertEqual(TrainingMemoryPlan.teacherStorage(for: teacher), .float32)
    }

    func testSmallStudentRecomputesOnlyWhenItsTapeCannotFit() throws {
        let student = try UNet2D(checkpoint: try Checkpoint.open(fixture("engine/cond_small"), options: OpenOptions(randomAccess: true)))
        XCTAssertFalse(TrainingMemoryPlan.recomputesActivations(student, batch: 2, height: 16, width: 16))
        setenv("DMSURGERY_MEMORY_LIMIT", "1000000", 1)
        XCTAssertTrue(TrainingMemoryPlan.recomputesActivations(student, batch: 2, height: 16, width: 16))
    }
}
