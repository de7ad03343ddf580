import TensorFormats
import UNet

/// How a training command keeps an SD-size model within memory, chosen from the model's size, never
/// from the machine it runs on (so a resumed run makes the same choices and the same bytes).
///
/// What a bilevel iteration of an SD-1.5-size pruned student holds (BENCHMARKS.md, issue 12 §3): the
/// student, its lower-level copy and their two AdamW moments each (six student-sized buffers: these
/// are fixed by the method), one gradient buffer, the teacher, and the tape. The plan shrinks the two
/// that can shrink without changing the training: the teacher is read from its mapped file at each
/// use (exact; held in 16 bits where the file cannot be mapped) and the tape is bounded by recomputing
/// activations block by block (bit-identical gradients). Models below `largeModelParameters` keep float32 teachers and full tapes: there the
/// time matters more than the memory.
public struct TrainingMemoryPlan: Sendable, Equatable {
    /// Models from this size on (SD-class UNets: 860M dense, ~480M pruned at 0.5) are planned for memory.
    public static let largeModelParameters = 100_000_000

    /// Whether the student recomputes its activations per block (`UNet2D.recomputesActivations`).
    public var recomputeActivations: Bool
    /// How the frozen teacher holds its weights.
    public var teacherStorage: FrozenStorage

    public init(recomputeActivations: Bool, teacherStorage: FrozenStorage) {
        self.recomputeActivations = recomputeActivations
        self.teacherStorage = teacherStorage
    }

    /// The teacher's storage: for a large model in a mapped file of F32, F16 or BF16 tensors, none:
    /// its weights are read from the file at each use (`FrozenStorage.mapped`: exact, a layer's copy at a
    /// time); otherwise its file's own 16-bit dtype when it has one (exact); for a float32 file of a
    /// large model that cannot be mapped (HDF5, pickles), IEEE half (weights rounded to nearest even,
    /// computed in float32); float32 otherwise. The dtype is the one holding most of the file's elements.
    public static func teacherStorage(for checkpoint: Checkpoint) -> FrozenStorage {
        if checkpoint.parameterCount >= largeModelParameters && FrozenStorage.canMap(checkpoint) { return .mapped }
        var elements: [DType: Int] = [:]
        for entry in checkpoint.entries { elements[entry.dtype, default: 0] += entry.elementCount }
        let dominant = elements.max { $0.value < $1.value || ($0.value == $1.value && $0.key.rawValue > $1.key.rawValue) }?.key
        let exact = dominant.map(FrozenStorage.exact(for:)) ?? .float32
        if exact != .float32 { return exact }
        return checkpoint.parameterCount >= largeModelParameters ? .float16 : .float32
    }

    /// Refuses, before the first step, a run whose buffers cannot be allocated: the student's gradient
    /// and its two AdamW moments (three more student-sized float32 buffers, which every method holds
    /// at least, on top of the weights already loaded), plus one batch's tape unless it is recomputed.
    /// A lower bound, so nothing that fits is refused; without it a model that loads but cannot train
    /// (`--init-config` widths [1024, 1024]) ends in an allocator abort mid-step.
    public static func checkOptimizerFits(_ student: UNet2D, batch: Int, side: Int) throws {
        let buffers = MemoryBudget.product([student.parameterCount, MemoryLayout<Float>.size, 3])
        let tape = student.recomputesActivations ? 0 : student.activationBytes(batch: batch, height: side, width: side, training: true)
        try MemoryBudget.check(MemoryBudget.sum([buffers, tape]),
                               for: "training \(student.parameterCount) parameters (gradient, AdamW moments, one batch's activations)",
                               option: "the model's widths (block_out_channels) or --batch")
    }

    /// Whether `student` recomputes activations: for a large model, or when the tape of one batch
    /// would take more than a quarter of the memory (`MemoryBudget.limit`; the gradients are the same
    /// either way, so this machine-dependent rule cannot change a result).
    public static func recomputesActivations(_ student: UNet2D, batch: Int, height: Int, width: Int) -> Bool {
        if student.parameterCount >= largeModelParameters { return true }
        guard let tape = student.activationBytes(batch: batch, height: height, width: width, training: true) else { return true }
        return tape > MemoryBudget.limit / 4
    }
}
