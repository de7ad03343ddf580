import Diffusion
import TensorMath
import UNet

/// The losses and learning rate of one iteration, in log order.
public struct StepReport: Sendable {
    public var losses: [(name: String, value: Double)] = []
    public var learningRate: Float = 0

    public init() {}

    public mutating func add(_ name: String, _ value: Float?) {
        if let value { losses.append((name, Double(value))) }
    }

    mutating func add(_ prefix: String, _ value: LowerLevelValue) {
        add(prefix.isEmpty ? "loss" : prefix, value.total)
        add("l_diff", value.diffusion)
        add("l_out", value.outputKD)
        add("l_feat", value.featureKD)
    }
}

/// One way of updating a student, driven step by step by `TrainingLoop`.
public protocol TrainingMethod {
    /// The model that gets written.
    var student: UNet2D { get }
    /// Iteration `index` (0-based): draws what it needs from `rng` and updates the model(s).
    mutating func step(_ index: Int, rng: inout TrainingRandom) throws -> StepReport
    /// Adds the method's models and optimizers to a resumable state.
    func store(into state: inout TrainingState) throws
    /// Reads them back from a state written by `store(into:)`.
    mutating func restore(from state: TrainingState, file: String) throws
    /// The ranks that share each batch (DataParallel.swift).
    var parallel: DataParallel { get set }
}

/// `finetune`: the lower level alone (plain diffusion training without a teacher).
public struct FinetuneMethod: TrainingMethod {
    public private(set) var student: UNet2D
    public let teacher: UNet2D?
    public let data: TrainingData
    public let objective: LowerLevelObjective
    public let batchSize: Int
    public var optimizer: ModelOptimizer
    /// The ranks sharing each batch (`solo` in one process).
    public var parallel = DataParallel.solo

    public init(student: UNet2D, teacher: UNet2D?, data: TrainingData, objective: LowerLevelObjective,
                batchSize: Int, optimizer: ModelOptimizer) {
        self.student = student
        self.teacher = teacher
        self.data = data
        self.objective = objective
        self.batchSize = batchSize
        self.optimizer = optimizer
    }

    public mutating func step(_ index: Int, rng: inout TrainingRandom) throws -> StepReport {
        let batch = objective.drawBatch(from: data, size: batchSize, shard: parallel.shard(of: batchSize), rng: &rng)
        var items = ItemSums()
        for item in batch.chunks(of: parallel.chunk(of: batchSize)) {
            let teacherOut = try teacher.map { try objective.teacherOutput($0, item) }
            var gradients: [String: Tensor] = [:]
            let value = try objective.evaluate(student, item, teacher: teacherOut, into: &gradients)
            items.add(gradients, values: value.parts)
        }
        var (gradients, means) = parallel.mean(items, chunks: batchSize / parallel.chunk(of: batchSize), layout: student)
        let value = LowerLevelValue(parts: means, distilled: teacher != nil)
        var report = StepReport()
        report.learningRate = optimizer.currentRate
        report.add("", value)
        optimizer.apply(&gradients, to: &student)
        return report
    }

    public func store(into state: inout TrainingState) throws {
        state.store(student, as: "model")
        try state.store(optimizer, as: "adam")
    }

    public mutating func restore(from state: TrainingState, file: String) throws {
        try state.restore(&student, from: "model", file: file)
        try state.restore(&optimizer, from: "adam", for: student, file: file)
    }
}

/// `erase`: the upper level alone (ESD with teacher guidance, or concept ablation).
public struct EraseMethod: TrainingMethod {
    public private(set) var student: UNet2D
    public let teacher: UNet2D
    public let forget: TrainingData
    public let objective: ConceptObjective
    public let batchSize: Int
    public var optimizer: ModelOptimizer
    /// The ranks sharing each batch (`solo` in one process).
    public var parallel = DataParallel.solo

    public init(student: UNet2D, teacher: UNet2D, forget: TrainingData, objective: ConceptObjective,
                batchSize: Int, optimizer: ModelOptimizer) {
        self.student = student
        self.teacher = teacher
        self.forget = forget
        self.objective = objective
        self.batchSize = batchSize
        self.optimizer = optimizer
    }

    public mutating func step(_ index: Int, rng: inout TrainingRandom) throws -> StepReport {
        let batch = try objective.drawBatch(from: forget, size: batchSize, shard: parallel.shard(of: batchSize),
                                            chunk: parallel.chunk(of: batchSize), teacher: teacher, rng: &rng)
        var items = ItemSums()
        for item in batch.chunks(of: parallel.chunk(of: batchSize)) {
            var gradients: [String: Tensor] = [:]
            let loss = try objective.evaluate(student, item, into: &gradients)
            items.add(gradients, values: [Double(loss)])
        }
        var (gradients, means) = parallel.mean(items, chunks: batchSize / parallel.chunk(of: batchSize), layout: student)
        var report = StepReport()
        report.learningRate = optimizer.currentRate
        report.add("l_cu", Float(means[0]))
        optimizer.apply(&gradients, to: &student)
        return report
    }

    public func store(into state: inout TrainingState) throws {
        state.store(student, as: "model")
        try state.store(optimizer, as: "adam")
    }

    public mutating func restore(from state: TrainingState, file: String) throws {
        try state.restore(&student, from: "model", file: file)
        try state.restore(&optimizer, from: "adam", for: student, file: file)
    }
}

/// lambda at outer iteration i: `value` * min(1, (i + 1) / ramp), constant when ramp is 0.
public struct PenaltySchedule: Sendable {
    public var value: Float
    public var ramp: Int

    public init(value: Float, ramp: Int) {
        self.value = value
        self.ramp = ramp
    }

    public func lambda(at iteration: Int) -> Float {
        guard ramp > 0, iteration + 1 < ramp else { return value }
        return value * Float(iteration + 1) / Float(ramp)
    }
}

/// `unlearn --schedule penalty`: the first-order penalty method for
/// min_θ max_ϑ L_CU(θ) + λ (L_ft(θ) − L_ft(ϑ)). A persistent lower-level copy ϑ (initialised to the
/// student) takes K AdamW steps on L_ft; then θ takes one step along ∇L_CU(θ) + λ∇L_ft(θ), where L_ft(θ)
/// is evaluated on the last inner batch with the teacher outputs already computed for it. The reported
/// gap is L_ft(θ) − L_ft(ϑ) on that batch, ϑ's value taken before its last inner update.
public struct PenaltyMethod: TrainingMethod {
    public private(set) var student: UNet2D
    public private(set) var lowerCopy: UNet2D
    public let teacher: UNet2D
    public let data: TrainingData
    public let forget: TrainingData
    public let lower: LowerLevelObjective
    public let upper: ConceptObjective
    public let batchSize: Int
    public let innerSteps: Int
    public let penalty: PenaltySchedule
    public var lowerOptimizer: ModelOptimizer
    public var upperOptimizer: ModelOptimizer
    /// The ranks sharing each batch (`solo` in one process).
    public var parallel = DataParallel.solo

    public init(student: UNet2D, teacher: UNet2D, data: TrainingData, forget: TrainingData,
                lower: LowerLevelObjective, upper: ConceptObjective, batchSize: Int, innerSteps: Int,
                penalty: PenaltySchedule, lowerOptimizer: ModelOptimizer, upperOptimizer: ModelOptimizer) {
        precondition(innerSteps >= 1, "the penalty method needs at least one inner step")
        self.student = student
        lowerCopy = student
        self.teacher = teacher
        self.data = data
        self.forget = forget
        self.lower = lower
        self.upper = upper
        self.batchSize = batchSize
        self.innerSteps = innerSteps
        self.penalty = penalty
        self.lowerOptimizer = lowerOptimizer
        self.upperOptimizer = upperOptimizer
    }

    public mutating func step(_ index: Int, rng: inout TrainingRandom) throws -> StepReport {
        var last: (items: [NoisedBatch], teachers: [UNetOutput], total: Float)?
        let shard = parallel.shard(of: batchSize)
        for _ in 0..<innerSteps {
            let batch = lower.drawBatch(from: data, size: batchSize, shard: shard, rng: &rng).chunks(of: parallel.chunk(of: batchSize))
            let teacherOuts = try batch.map { try lower.teacherOutput(teacher, $0) }
            var items = ItemSums()
            for (item, teacherOut) in zip(batch, teacherOuts) {
                var gradients: [String: Tensor] = [:]
                let value = try lower.evaluate(lowerCopy, item, teacher: teacherOut, into: &gradients)
                items.add(gradients, values: value.parts)
            }
            var (gradients, means) = parallel.mean(items, chunks: batchSize / parallel.chunk(of: batchSize), layout: lowerCopy)
            lowerOptimizer.apply(&gradients, to: &lowerCopy)
            last = (batch, teacherOuts, Float(means[0]))
        }
        let lambda = penalty.lambda(at: index)
        let forgetBatch = try upper.drawBatch(from: forget, size: batchSize, shard: shard, chunk: parallel.chunk(of: batchSize), teacher: teacher, rng: &rng)
        var items = ItemSums()
        for (i, forgetItem) in forgetBatch.chunks(of: parallel.chunk(of: batchSize)).enumerated() {
            // Both levels' gradients of one item go into one buffer, as the single-process step did.
            var gradients: [String: Tensor] = [:]
            let cuItem = try upper.evaluate(student, forgetItem, into: &gradients)
            let ftItem = try lower.evaluate(student, last!.items[i], teacher: last!.teachers[i], scale: lambda, into: &gradients)
            items.add(gradients, values: [Double(cuItem)] + ftItem.parts)
        }
        var (gradients, means) = parallel.mean(items, chunks: batchSize / parallel.chunk(of: batchSize), layout: student)
        let cu = Float(means[0])
        let ft = LowerLevelValue(parts: means.dropFirst(), distilled: true)
        let copyValue = last!.total
        var report = StepReport()
        report.learningRate = upperOptimizer.currentRate
        report.add("l_cu", cu)
        report.add("l_ft", ft)
        report.add("l_ft_copy", copyValue)
        report.add("gap", ft.total - copyValue)
        report.add("lambda", lambda)
        upperOptimizer.apply(&gradients, to: &student)
        return report
    }

    public func store(into state: inout TrainingState) throws {
        state.store(student, as: "model")
        state.store(lowerCopy, as: "copy")
        try state.store(lowerOptimizer, as: "adam-lower")
        try state.store(upperOptimizer, as: "adam-upper")
    }

    public mutating func restore(from state: TrainingState, file: String) throws {
        try state.restore(&student, from: "model", file: file)
        try state.restore(&lowerCopy, from: "copy", file: file)
        try state.restore(&lowerOptimizer, from: "adam-lower", for: student, file: file)
        try state.restore(&upperOptimizer, from: "adam-upper", for: student, file: file)
    }
}

/// `unlearn --schedule interleaved`: the authors' code. One model; every iteration a lower step on
/// L_ft with its own AdamW; every `upperEvery`-th iteration (index % k == k − 1) also an upper step on
/// L_CU with a second AdamW.
public struct InterleavedMethod: TrainingMethod {
    public private(set) var student: UNet2D
    public let teacher: UNet2D
    public let data: TrainingData
    public let forget: TrainingData
    public let lower: LowerLevelObjective
    public let upper: ConceptObjective
    public let batchSize: Int
    public let upperEvery: Int
    public var lowerOptimizer: ModelOptimizer
    public var upperOptimizer: ModelOptimizer
    /// The ranks sharing each batch (`solo` in one process).
    public var parallel = DataParallel.solo

    public init(student: UNet2D, teacher: UNet2D, data: TrainingData, forget: TrainingData,
                lower: LowerLevelObjective, upper: ConceptObjective, batchSize: Int, upperEvery: Int,
                lowerOptimizer: ModelOptimizer, upperOptimizer: ModelOptimizer) {
        precondition(upperEvery >= 1, "the upper step period must be at least 1")
        self.student = student
        self.teacher = teacher
        self.data = data
        self.forget = forget
        self.lower = lower
        self.upper = upper
        self.batchSize = batchSize
        self.upperEvery = upperEvery
        self.lowerOptimizer = lowerOptimizer
        self.upperOptimizer = upperOptimizer
    }

    public mutating func step(_ index: Int, rng: inout TrainingRandom) throws -> StepReport {
        var report = StepReport()
        report.learningRate = lowerOptimizer.currentRate
        let shard = parallel.shard(of: batchSize)
        let batch = lower.drawBatch(from: data, size: batchSize, shard: shard, rng: &rng)
        var items = ItemSums()
        for item in batch.chunks(of: parallel.chunk(of: batchSize)) {
            let teacherOut = try lower.teacherOutput(teacher, item)
            var gradients: [String: Tensor] = [:]
            let value = try lower.evaluate(student, item, teacher: teacherOut, into: &gradients)
            items.add(gradients, values: value.parts)
        }
        var (gradients, means) = parallel.mean(items, chunks: batchSize / parallel.chunk(of: batchSize), layout: student)
        lowerOptimizer.apply(&gradients, to: &student)
        report.add("l_ft", LowerLevelValue(parts: means, distilled: true))
        if index % upperEvery == upperEvery - 1 {
            let forgetBatch = try upper.drawBatch(from: forget, size: batchSize, shard: shard, chunk: parallel.chunk(of: batchSize), teacher: teacher, rng: &rng)
            var upperItems = ItemSums()
            for item in forgetBatch.chunks(of: parallel.chunk(of: batchSize)) {
                var upperGradients: [String: Tensor] = [:]
                let loss = try upper.evaluate(student, item, into: &upperGradients)
                upperItems.add(upperGradients, values: [Double(loss)])
            }
            var (upperGradients, cu) = parallel.mean(upperItems, chunks: batchSize / parallel.chunk(of: batchSize), layout: student)
            upperOptimizer.apply(&upperGradients, to: &student)
            report.add("l_cu", Float(cu[0]))
        }
        return report
    }

    public func store(into state: inout TrainingState) throws {
        state.store(student, as: "model")
        try state.store(lowerOptimizer, as: "adam-lower")
        try state.store(upperOptimizer, as: "adam-upper")
    }

    public mutating func restore(from state: TrainingState, file: String) throws {
        try state.restore(&student, from: "model", file: file)
        try state.restore(&lowerOptimizer, from: "adam-lower", for: student, file: file)
        try state.restore(&upperOptimizer, from: "adam-upper", for: student, file: file)
    }
}
