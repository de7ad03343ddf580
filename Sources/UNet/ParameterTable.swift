import TensorMath

/// Read access to the weights while a model is being built: every lookup checks presence and shape
/// and records the name, so that leftovers (weights no layer used) can be reported afterwards.
///
/// In generating mode (`init(seed:)`) a missing parameter is created instead, at its dense width, so the
/// same construction code yields a freshly initialised model for benchmarks and memory checks.
struct ParameterTable {
    /// How a generated parameter is filled.
    enum Fill { case random, ones, zeros }

    private(set) var weights: [String: Tensor]
    /// A frozen model's weights held in 16 bits (`UNet2D.freeze(as:)`), checked like the others.
    private(set) var narrow: [String: NarrowTensor] = [:]
    /// A frozen model's weights read from their mapped file at each use (`FrozenStorage.mapped`).
    private(set) var mapped: [String: MappedTensor] = [:]
    private(set) var used: Set<String> = []
    private var rng: SplitMix64?
    /// Shapes without values (`init(shapes:)`): the structure of a model for writers of other formats,
    /// built by the same code and checks as the model itself, with no weight in memory.
    private var declared: [String: [Int]] = [:]

    init(_ weights: [String: Tensor], narrow: [String: NarrowTensor] = [:], mapped: [String: MappedTensor] = [:]) {
        self.weights = weights
        self.narrow = narrow
        self.mapped = mapped
    }

    init(shapes: [String: [Int]]) {
        weights = [:]
        declared = shapes
    }

    init(seed: UInt64) {
        weights = [:]
        rng = SplitMix64(state: seed)
    }

    /// Whether `name` exists; when generating, whether a dense model has it (`dense`).
    func has(_ name: String, dense: Bool) -> Bool {
        rng == nil ? weights[name] != nil || narrow[name] != nil || mapped[name] != nil || declared[name] != nil : dense
    }

    /// The shape of `name`; `expect` lists the dims that must hold (nil = any), and the rank. When
    /// generating, nil dims take the value in `dense`.
    mutating func shape(_ name: String, _ expect: [Int?], dense: [Int]? = nil, fill: Fill = .random) throws -> [Int] {
        if weights[name] == nil, rng != nil {
            let shape = zip(expect.indices, expect).map { i, e in e ?? dense![i] }
            weights[name] = generate(shape, fill)
        }
        guard let s = weights[name]?.shape ?? narrow[name]?.shape ?? mapped[name]?.shape ?? declared[name] else {
            throw UNetError(.missingParameter, name, "not in the weights")
        }
        let fits = s.count == expect.count && zip(s, expect).allSatisfy { $1 == nil || $0 == $1! }
        guard fits else {
            let want = expect.map { $0.map(String.init) ?? "*" }.joined(separator: ", ")
            throw UNetError(.badShape, name, "shape \(s) where [\(want)] is expected")
        }
        used.insert(name)
        return s
    }

    /// torch-like init: uniform in +-1/sqrt(fan_in) for weights, ones for norm scales, zeros for biases.
    private mutating func generate(_ shape: [Int], _ fill: Fill) -> Tensor {
        let n = shape.reduce(1, *)
        switch fill {
        case .ones: return Tensor(repeating: 1, shape: shape)
        case .zeros: return Tensor(zeros: shape)
        case .random:
            let bound = 1 / Float(max(1, n / shape[0])).squareRoot()
            var g = rng!
            let data = (0..<n).map { _ in (Float(g.next() >> 40) / Float(1 << 24) * 2 - 1) * bound }
            rng = g
            return Tensor(shape: shape, data: data)
        }
    }

    /// Names in the weights that no layer claimed, sorted.
    var unused: [String] {
        (Array(weights.keys) + Array(narrow.keys) + Array(mapped.keys) + Array(declared.keys)).filter { !used.contains($0) }.sorted()
    }
}

/// Parameter gradients by name. A frozen model passes `enabled: false`, and then no layer computes or
/// stores a parameter gradient.
struct GradientSink {
    let enabled: Bool
    var values: [String: Tensor] = [:]

    init(enabled: Bool) { self.enabled = enabled }

    var needs: GradientNeeds { enabled ? .all : .input }

    /// Adds `g` to the gradient stored under `name` (parameters used twice sum their gradients).
    mutating func add(_ name: String, _ g: Tensor?) {
        guard enabled, let g else { return }
        if values[name] == nil { values[name] = g } else { values[name]!.add(g) }
    }
}
