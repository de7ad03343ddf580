import Foundation
import TensorFormats
import TensorMath
import UNet

/// The robust upper level (`unlearn --upper-attack adversarial`): AdvUnlearn's min-max applied to the
/// UNet, min_θ max_{δ ∈ B} L_CU(θ; c + δ). δ [S, D] is one offset of the encoder states shared by every
/// forget prompt, each token row in an L2 ball of `radius`; the upper step evaluates L_CU on c + δ
/// against the targets of c (the teacher's, for the concept as asked), so the student learns to erase
/// the concept also where a nearby embedding would bring it back. Every `every`-th upper step refreshes
/// δ against the current student by `steps` projected gradient-ascent steps on that step's batch:
///
///     g_r = ∇_{δ_r} L_CU(θ; c + δ) summed over the batch,   δ_r ← Π_{|δ_r| ≤ R}(δ_r + α g_r / |g_r|),
///
/// per token row r with α = 2.5 R / steps (Madry et al.'s step, so the ball's rim is reachable). The
/// ball is the one `eval --attack adversarial` optimises a concept slot in; here every row moves, a
/// superset of that attack's rows. δ starts at 0 and is kept between refreshes (warm start) in the
/// resumable state (`attack/offset`), so a resumed run continues bit for bit. Every rank refreshes δ on
/// the whole batch itself, in the single process's chunks: δ is the same bits on any rank count.
public struct UpperAttack: Sendable {
    public let settings: UpperAttackSettings
    /// δ, [S, D].
    public private(set) var offset: Tensor

    /// The state tensor that holds δ.
    static let stateName = "attack/offset"

    /// An attack on encoder states of `tokens` x `width` (a forget file's cond [M, S, D]), starting at 0.
    public init(settings: UpperAttackSettings, tokens: Int, width: Int) {
        self.settings = settings
        offset = Tensor(shape: [tokens, width], data: [Float](repeating: 0, count: tokens * width))
    }

    /// Whether upper step `upperStep` (0-based) refreshes δ before it is taken.
    public func refreshes(atUpperStep upperStep: Int) -> Bool { upperStep % settings.every == 0 }

    /// `batch` with δ added to every item's encoder states.
    public func shifted(_ batch: NoisedBatch) -> NoisedBatch {
        guard var cond = batch.cond else { return batch }
        let per = offset.count
        cond.data.withUnsafeMutableBufferPointer { c in
            offset.data.withUnsafeBufferPointer { d in
                for start in stride(from: 0, to: c.count, by: per) { for j in 0..<per { c[start + j] += d[j] } }
            }
        }
        var shifted = batch
        shifted.cond = cond
        return shifted
    }

    /// L_CU of `model` on `chunks` (targets set, δ added to their prompts), and with `gradient` its
    /// gradient with respect to δ summed over the chunks in float64; the model's parameters get none.
    public func loss(_ model: UNet2D, on chunks: [NoisedBatch], gradient: Bool) throws -> (loss: Double, gradient: [Double]) {
        var sum = [Double](repeating: 0, count: gradient ? offset.count : 0)
        var total = 0.0
        for chunk in chunks {
            let item = shifted(chunk)
            let (out, tape) = try model.forward(sample: item.sample, timesteps: item.timestepValues, encoderHiddenStates: item.cond,
                                                textTime: item.textTime, recording: gradient)
            let (loss, dOut) = NN.mseLoss(out.sample, item.target)
            total += Double(loss) / Double(chunks.count)
            guard gradient, let tape, let dContext = model.backward(tape, outputGradient: dOut, parameterGradients: false).encoderHiddenStates
            else { continue }
            let per = offset.count
            dContext.data.withUnsafeBufferPointer { g in
                for start in stride(from: 0, to: g.count, by: per) { for j in 0..<per { sum[j] += Double(g[start + j]) } }
            }
        }
        return (total, sum)
    }

    /// `settings.steps` projected ascent steps on L_CU over `chunks` (the whole upper batch).
    public mutating func refresh(_ model: UNet2D, on chunks: [NoisedBatch]) throws {
        let width = offset.shape[1], radius = settings.radius
        let alpha = 2.5 * Double(radius) / Double(settings.steps)
        for _ in 0..<settings.steps {
            let g = try loss(model, on: chunks, gradient: true).gradient
            for row in 0..<offset.shape[0] {
                let span = row * width..<(row + 1) * width
                let norm = span.reduce(0.0) { $0 + g[$1] * g[$1] }.squareRoot()
                guard norm > 0, norm.isFinite else { continue }
                var moved = span.map { Double(offset.data[$0]) + alpha * g[$0] / norm }
                let length = moved.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
                if length > Double(radius) { moved = moved.map { $0 * Double(radius) / length } }
                for (k, i) in span.enumerated() { offset.data[i] = Float(moved[k]) }
            }
        }
    }

    /// Adds δ to a resumable state.
    func store(into state: inout TrainingState) {
        state.tensors[Self.stateName] = offset
    }

    /// Reads δ back: it must be there, of this shape, finite, and every row inside the ball (a state
    /// edited by hand is refused, as its other tensors are).
    mutating func restore(from state: TrainingState, file: String) throws {
        guard let stored = state.tensors[Self.stateName] else {
            throw TensorFormatError(.missingTensor, "the state has no adversarial offset of the robust upper level", file: file, tensor: Self.stateName)
        }
        guard stored.shape == offset.shape else {
            throw TensorFormatError(.badShape, "offset of shape \(stored.shape), the forget prompts need \(offset.shape)", file: file, tensor: Self.stateName)
        }
        guard stored.data.allSatisfy(\.isFinite) else {
            throw TensorFormatError(.nonFinite, "the offset is not finite", file: file, tensor: Self.stateName)
        }
        let width = offset.shape[1]
        for row in 0..<offset.shape[0] {
            let norm = stored.data[row * width..<(row + 1) * width].reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            guard norm <= Double(settings.radius) * (1 + 1e-5) else {
                throw TensorFormatError(.invalidMetadata, "row \(row) of the offset has norm \(norm), outside --attack-radius \(settings.radius)",
                                        file: file, tensor: Self.stateName)
            }
        }
        offset = stored
    }
}
