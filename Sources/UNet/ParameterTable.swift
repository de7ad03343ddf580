import TensorMath

/// Read access to the weights while a model is being built: every lookup checks presence and shape
/// and records the name, so that leftovers (weights no layer used) can be reported afterwards.
struct ParameterTable {
    let weights: [String: Tensor]
    private(set) var used: Set<String> = []

    init(_ weights: [String: Tensor]) { self.weights = weights }

    func has(_ name: String) -> Bool { weights[name] != nil }

    /// The shape of `name`; `expect` lists the dims that must hold (nil = any), and the rank.
    mutating func shape(_ name: String, _ expect: [Int?]) throws -> [Int] {
        guard let t = weights[name] else {
            throw UNetError(.missingParameter, name, "not in the weights")
        }
        let s = t.shape
        let fits = s.count == expect.count && zip(s, expect).allSatisfy { $1 == nil || $0 == $1! }
        guard fits else {
            let want = expect.map { $0.map(String.init) ?? "*" }.joined(separator: ", ")
            throw UNetError(.badShape, name, "shape \(s) where [\(want)] is expected")
        }
        used.insert(name)
        return s
    }

    /// Names in the weights that no layer claimed, sorted.
    var unused: [String] { weights.keys.filter { !used.contains($0) }.sorted() }
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
