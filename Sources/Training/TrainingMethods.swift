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

/// One way of updating a student, driven step by step by `TrainingLoop`: each iteration is made of
/// `DataParallel.descend` steps (BatchStep.swift), and the state it resumes from is the models and
/// optimizers it lists (`CheckpointedMethod`).
public protocol TrainingMethod: CheckpointedMethod {
    /// The model that gets written.
    var student: UNet2D { get }
    /// Iteration `index` (0-based): draws what it needs from `rng` and updates the model(s).
    mutating func step(_ index: Int, rng: inout TrainingRandom) throws -> StepReport
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
        let (objective, teacher) = (self.objective, self.teacher)
        var report = StepReport()
        report.learningRate = optimizer.currentRate
        let chunks = objective.drawChunks(from: data, size: batchSize, parallel: parallel, rng: &rng)
        let means = try parallel.descend(&student, with: &optimizer, over: chunks, batchSize: batchSize) { model, item, gradients in
            let teacherOut = try teacher.map { try objective.teacherOutput($0, item) }
            return try objective.evaluate(model, item, teacher: teacherOut, into: &gradients).parts
        }
        report.add("", LowerLevelValue(parts: means, distilled: teacher != nil))
        return report
    }

    public static var models: [(prefix: String, model: WritableKeyPath<Self, UNet2D>)] { [("model", \.student)] }
    public static var optimizers: [(prefix: String, optimizer: WritableKeyPath<Self, ModelOptimizer>)] { [("adam", \.optimizer)] }
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
        let objective = self.objective
        var report = StepReport()
        report.learningRate = optimizer.currentRate
        let chunks = try objective.drawChunks(from: forget, size: batchSize, parallel: parallel, teacher: teacher, rng: &rng)
        let means = try parallel.descend(&student, with: &optimizer, over: chunks, batchSize: batchSize) { model, item, gradients in
            [Double(try objective.evaluate(model, item, into: &gradients))]
        }
        report.add("l_cu", Float(means[0]))
        return report
    }

    public static var models: [(prefix: String, model: WritableKeyPath<Self, UNet2D>)] { [("model", \.student)] }
    public static var optimizers: [(prefix: String, optimizer: WritableKeyPath<Self, ModelOptimizer>)] { [("adam", \.optimizer)] }
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
    /// K and the lambda schedule.
    public let penalty: PenaltySettings
    public var lowerOptimizer: ModelOptimizer
    public var upperOptimizer: ModelOptimizer
    /// The robust upper level: L_CU on the adversarially shifted prompts (every outer iteration is an upper step).
    public var upperAttack: UpperAttack?
    /// The ranks sharing each batch (`solo` in one process).
    public var parallel = DataParallel.solo

    public init(student: UNet2D, teacher: UNet2D, data: TrainingData, forget: TrainingData,
                lower: LowerLevelObjective, upper: ConceptObjective, batchSize: Int, penalty: PenaltySettings,
                lowerOptimizer: ModelOptimizer, upperOptimizer: ModelOptimizer, upperAttack: UpperAttack? = nil) {
        precondition(penalty.innerSteps >= 1, "the penalty method needs at least one inner step")
        self.student = student
        lowerCopy = student
        self.teacher = teacher
        self.data = data
        self.forget = forget
        self.lower = lower
        self.upper = upper
        self.batchSize = batchSize
        self.penalty = penalty
        self.lowerOptimizer = lowerOptimizer
        self.upperOptimizer = upperOptimizer
        self.upperAttack = upperAttack
    }

    public mutating func step(_ index: Int, rng: inout TrainingRandom) throws -> StepReport {
        let (lower, upper, teacher) = (self.lower, self.upper, self.teacher)
        var last: (items: [(NoisedBatch, UNetOutput)], total: Float) = ([], 0)
        for _ in 0..<penalty.innerSteps {
            let chunks = lower.drawChunks(from: data, size: batchSize, parallel: parallel, rng: &rng)
            let items = try chunks.map { ($0, try lower.teacherOutput(teacher, $0)) }
            let means = try parallel.descend(&lowerCopy, with: &lowerOptimizer, over: items, batchSize: batchSize) { model, item, gradients in
                try lower.evaluate(model, item.0, teacher: item.1, into: &gradients).parts
            }
            last = (items, Float(means[0]))
        }
        let lambda = penalty.lambda(at: index)
        var report = StepReport()
        report.learningRate = upperOptimizer.currentRate
        let forgetChunks = try drawAttacked(upper, from: forget, upperStep: index, teacher: teacher, rng: &rng)
        let means = try parallel.descend(&student, with: &upperOptimizer, over: Array(zip(forgetChunks, last.items)),
                                         batchSize: batchSize) { model, item, gradients in
            // Both levels' gradients of one item go into one buffer, as the single-process step did.
            let cuItem = try upper.evaluate(model, item.0, into: &gradients)
            let ftItem = try lower.evaluate(model, item.1.0, teacher: item.1.1, scale: lambda, into: &gradients)
            return [Double(cuItem)] + ftItem.parts
        }
        let ft = LowerLevelValue(parts: means.dropFirst(), distilled: true)
        report.add("l_cu", Float(means[0]))
        report.add("l_ft", ft)
        report.add("l_ft_copy", last.total)
        report.add("gap", ft.total - last.total)
        report.add("lambda", lambda)
        return report
    }

    public static var models: [(prefix: String, model: WritableKeyPath<Self, UNet2D>)] {
        [("model", \.student), ("copy", \.lowerCopy)]
    }
    public static var optimizers: [(prefix: String, optimizer: WritableKeyPath<Self, ModelOptimizer>)] {
        [("adam-lower", \.lowerOptimizer), ("adam-upper", \.upperOptimizer)]
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
    /// The robust upper level: L_CU on the adversarially shifted prompts (upper step index / upperEvery).
    public var upperAttack: UpperAttack?
    /// The ranks sharing each batch (`solo` in one process).
    public var parallel = DataParallel.solo

    public init(student: UNet2D, teacher: UNet2D, data: TrainingData, forget: TrainingData,
                lower: LowerLevelObjective, upper: ConceptObjective, batchSize: Int, upperEvery: Int,
                lowerOptimizer: ModelOptimizer, upperOptimizer: ModelOptimizer, upperAttack: UpperAttack? = nil) {
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
        self.upperAttack = upperAttack
    }

    public mutating func step(_ index: Int, rng: inout TrainingRandom) throws -> StepReport {
        let (lower, upper, teacher) = (self.lower, self.upper, self.teacher)
        var report = StepReport()
        report.learningRate = lowerOptimizer.currentRate
        let chunks = lower.drawChunks(from: data, size: batchSize, parallel: parallel, rng: &rng)
        let means = try parallel.descend(&student, with: &lowerOptimizer, over: chunks, batchSize: batchSize) { model, item, gradients in
            try lower.evaluate(model, item, teacher: try lower.teacherOutput(teacher, item), into: &gradients).parts
        }
        report.add("l_ft", LowerLevelValue(parts: means, distilled: true))
        if index % upperEvery == upperEvery - 1 {
            let forgetChunks = try drawAttacked(upper, from: forget, upperStep: index / upperEvery, teacher: teacher, rng: &rng)
            let cu = try parallel.descend(&student, with: &upperOptimizer, over: forgetChunks, batchSize: batchSize) { model, item, gradients in
                [Double(try upper.evaluate(model, item, into: &gradients))]
            }
            report.add("l_cu", Float(cu[0]))
        }
        return report
    }

    public static var models: [(prefix: String, model: WritableKeyPath<Self, UNet2D>)] { [("model", \.student)] }
    public static var optimizers: [(prefix: String, optimizer: WritableKeyPath<Self, ModelOptimizer>)] {
        [("adam-lower", \.lowerOptimizer), ("adam-upper", \.upperOptimizer)]
    }
}

/// The methods with an upper level (penalty, interleaved).
protocol UpperLevelMethod: TrainingMethod {
    var student: UNet2D { get }
    var batchSize: Int { get }
    var upperAttack: UpperAttack? { get set }
}

extension PenaltyMethod: UpperLevelMethod {}
extension InterleavedMethod: UpperLevelMethod {}

extension UpperLevelMethod {
    /// This rank's chunks of upper step `upperStep`'s forget batch, with the robust upper level's offset
    /// added to their prompts when there is one (refreshed first on a refresh step). The refresh sees the
    /// whole batch on every rank: the same draw from a copy of the stream, in the single process's chunks.
    mutating func drawAttacked(_ upper: ConceptObjective, from forget: TrainingData, upperStep: Int, teacher: UNet2D,
                               rng: inout TrainingRandom) throws -> [NoisedBatch] {
        let start = rng
        let chunks = try upper.drawChunks(from: forget, size: batchSize, parallel: parallel, teacher: teacher, rng: &rng)
        guard var attack = upperAttack else { return chunks }
        if attack.refreshes(atUpperStep: upperStep) {
            var copy = start
            let whole = parallel.size == 1 ? chunks
                : try upper.drawChunks(from: forget, size: batchSize, parallel: .solo, teacher: teacher, rng: &copy)
            try attack.refresh(student, on: whole)
            upperAttack = attack
        }
        return chunks.map { attack.shifted($0) }
    }
}
