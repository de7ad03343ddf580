import TensorMath
import UNet

/// Which teacher block output a student block output is distilled towards (L_featKD).
///
/// A width-pruned student has the teacher's blocks, so every block meets its namesake. A depth-pruned
/// one (formats/depth.md) may lack the mid block and, cut to `tiny`, the innermost stage: down blocks
/// then align from the input side (down i with down i), up blocks from the output side (student up i
/// with teacher up i + the number of up blocks it lacks, the block it was copied from), the mid block
/// with the mid block when both have one. Pairs whose shapes differ are left out: the last down block
/// of a `tiny` student has no downsampler, so its output is twice the side of its teacher block's.
public enum BlockAlignment {
    public static func pairs(student: [(BlockOutput, Tensor)], teacher: [(BlockOutput, Tensor)]) -> [(BlockOutput, BlockOutput)] {
        func ups(_ blocks: [(BlockOutput, Tensor)]) -> Int {
            blocks.filter { if case .up = $0.0 { return true } else { return false } }.count
        }
        let shift = ups(teacher) - ups(student)
        let teacherShapes = Dictionary(teacher.map { ($0.0, $0.1.shape) }, uniquingKeysWith: { a, _ in a })
        return student.compactMap { (id, tensor) in
            let match: BlockOutput
            switch id {
            case .down, .mid: match = id
            case .up(let i): match = .up(i + shift)
            }
            return teacherShapes[match] == tensor.shape ? (id, match) : nil
        }
    }
}
