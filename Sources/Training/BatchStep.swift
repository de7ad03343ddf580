import TensorMath
import UNet

/// The one training step every method is made of: draw a batch, split this rank's share of it into
/// chunks, evaluate each chunk alone, add the chunks' gradients and loss values (`ItemSums`), take the
/// batch mean across the ranks (`DataParallel.mean`) and apply it with the model's optimizer. The
/// methods differ only in what they draw and which loss a chunk adds; the order of every operation
/// (hence the bits of the weights for a given chunk count, alone or on any rank count dividing it) is
/// fixed here once.
extension DataParallel {
    /// The batch means of a loss over `chunks` (this rank's chunks of a global batch of `batchSize`):
    /// `evaluate` adds one chunk's parameter gradients into the empty buffer it is given and returns
    /// its loss values (the same values, in the same order, for every chunk); the result is the mean
    /// gradient of every parameter of `model` that has one and the means of those values.
    public func batchMean<Chunk>(of model: UNet2D, over chunks: [Chunk], batchSize: Int,
                                 evaluate: (UNet2D, Chunk, inout [String: Tensor]) throws -> [Double]) rethrows
        -> (gradients: [String: Tensor], values: [Double]) {
        var items = ItemSums()
        for item in chunks {
            var gradients: [String: Tensor] = [:]
            let values = try evaluate(model, item, &gradients)
            items.add(gradients, values: values)
        }
        return mean(items, chunks: batchSize / chunk(of: batchSize), layout: model)
    }

    /// One optimizer update of `model` along the batch mean of `batchMean(of:over:batchSize:evaluate:)`;
    /// returns the means of the loss values, taken before the update.
    public func descend<Chunk>(_ model: inout UNet2D, with optimizer: inout ModelOptimizer, over chunks: [Chunk],
                               batchSize: Int, evaluate: (UNet2D, Chunk, inout [String: Tensor]) throws -> [Double]) rethrows -> [Double] {
        var (gradients, values) = try batchMean(of: model, over: chunks, batchSize: batchSize, evaluate: evaluate)
        optimizer.apply(&gradients, to: &model)
        return values
    }
}

extension LowerLevelObjective {
    /// `drawBatch` for a global batch of `size`, as this rank's chunks (`DataParallel.chunk(of:)` items each).
    public func drawChunks(from data: TrainingData, size: Int, parallel: DataParallel, rng: inout TrainingRandom) -> [NoisedBatch] {
        drawBatch(from: data, size: size, shard: parallel.shard(of: size), rng: &rng).chunks(of: parallel.chunk(of: size))
    }
}

extension ConceptObjective {
    /// `drawBatch` for a global batch of `size`, as this rank's chunks (`DataParallel.chunk(of:)` items
    /// each; the teacher's targets are computed per chunk too).
    public func drawChunks(from forget: TrainingData, size: Int, parallel: DataParallel, teacher: UNet2D,
                           rng: inout TrainingRandom) throws -> [NoisedBatch] {
        let chunk = parallel.chunk(of: size)
        return try drawBatch(from: forget, size: size, shard: parallel.shard(of: size), chunk: chunk, teacher: teacher, rng: &rng)
            .chunks(of: chunk)
    }
}

/// What a resumable state holds of a method: its trained models and its optimizers, each under a
/// prefix (`TrainingState`). A method lists them once; storing and restoring follow from the list.
public protocol CheckpointedMethod {
    /// The models trained, by state prefix (`model` is the student written at the end).
    static var models: [(prefix: String, model: WritableKeyPath<Self, UNet2D>)] { get }
    /// The optimizers, by state prefix; their moments are sized by `student`'s parameters.
    static var optimizers: [(prefix: String, optimizer: WritableKeyPath<Self, ModelOptimizer>)] { get }
    var student: UNet2D { get }
    /// The robust upper level's attack, whose offset the run continues from (none by default).
    var upperAttack: UpperAttack? { get set }
}

extension CheckpointedMethod {
    public var upperAttack: UpperAttack? {
        get { nil }
        set {}
    }

    /// Adds the method's models, optimizers and attack offset to a resumable state.
    public func store(into state: inout TrainingState) throws {
        for (prefix, model) in Self.models { state.store(self[keyPath: model], as: prefix) }
        for (prefix, optimizer) in Self.optimizers { try state.store(self[keyPath: optimizer], as: prefix) }
        upperAttack?.store(into: &state)
    }

    /// Reads them back from a state written by `store(into:)`: the models first, then the optimizers,
    /// then the attack's offset.
    public mutating func restore(from state: TrainingState, file: String) throws {
        for (prefix, model) in Self.models { try state.restore(&self[keyPath: model], from: prefix, file: file) }
        let layout = student
        for (prefix, optimizer) in Self.optimizers {
            try state.restore(&self[keyPath: optimizer], from: prefix, for: layout, file: file)
        }
        if var attack = upperAttack {
            try attack.restore(from: state, file: file)
            upperAttack = attack
        }
    }
}
