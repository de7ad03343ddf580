import TensorFormats

/// Appends nodes and initializers to a graph under construction and hands out unique value names
/// (`scope/Op`, numbered on repeats), so the layer helpers compose without bookkeeping at the call site.
public struct GraphBuilder {
    public private(set) var nodes: [Node] = []
    public private(set) var initializers: [Initializer] = []
    private var used: Set<String> = []
    private var constants: [String: String] = [:]
    /// The checkpoint's tensor shapes: every weight reference is checked against them.
    private let shapes: [String: [Int]]
    /// The file the shapes come from, for errors.
    private let file: String

    public init(shapes: [String: [Int]], file: String) {
        self.shapes = shapes
        self.file = file
    }

    private mutating func unique(_ base: String) -> String {
        var name = base
        var n = 1
        while used.contains(name) {
            name = "\(base)_\(n)"
            n += 1
        }
        used.insert(name)
        return name
    }

    /// Adds a node; returns its output names.
    @discardableResult
    public mutating func node(_ op: String, _ inputs: [String], scope: String, outputs: Int = 1, domain: String = "",
                              _ attributes: [(name: String, value: Attribute)] = []) -> [String] {
        let name = unique("/\(scope)/\(op)")
        let outs = (0..<outputs).map { outputs == 1 ? name : "\(name):\($0)" }
        for o in outs where o != name { used.insert(o) }
        nodes.append(Node(op: op, domain: domain, name: name, inputs: inputs, outputs: outs, attributes: attributes))
        return outs
    }

    /// Adds a one-output node; returns its output.
    public mutating func op(_ op: String, _ inputs: [String], scope: String,
                            _ attributes: [(name: String, value: Attribute)] = []) -> String {
        node(op, inputs, scope: scope, attributes)[0]
    }

    /// A checkpoint tensor as an initializer under its own name; its shape must be `expected` (nil: any).
    /// A transposed weight is a 2-D [out, in] tensor stored as [in, out].
    public mutating func weight(_ name: String, expected: [Int?]? = nil, transposed: Bool = false) throws -> String {
        guard let shape = shapes[name] else {
            throw TensorFormatError(.notFound, "the model needs this tensor and the checkpoint does not hold it", file: file, tensor: name)
        }
        if let expected {
            let fits = shape.count == expected.count && zip(shape, expected).allSatisfy { $1 == nil || $0 == $1! }
            guard fits else {
                let want = expected.map { $0.map(String.init) ?? "*" }.joined(separator: ", ")
                throw TensorFormatError(.invalidShape, "shape \(shape) where [\(want)] is expected", file: file, tensor: name)
            }
        }
        guard !transposed || shape.count == 2 else {
            throw TensorFormatError(.invalidShape, "shape \(shape) is not a matrix", file: file, tensor: name)
        }
        if !used.contains(name) {
            used.insert(name)
            initializers.append(Initializer(name: name, type: .float32, shape: transposed ? [shape[1], shape[0]] : shape,
                                            source: .tensor(name, transposed: transposed)))
        }
        return name
    }

    /// A float constant, shared by every use of the same name.
    public mutating func floats(_ values: [Float], shape: [Int], name: String) -> String {
        if let existing = constants[name] { return existing }
        let unique = unique("/const/\(name)")
        initializers.append(Initializer(name: unique, type: .float32, shape: shape, source: .floats(values)))
        constants[name] = unique
        return unique
    }

    /// A float scalar constant.
    public mutating func scalar(_ value: Float) -> String {
        floats([value], shape: [], name: "scalar_\(value.bitPattern)")
    }

    /// An int64 vector constant (shapes, axes, starts and ends).
    public mutating func int64s(_ values: [Int]) -> String {
        let key = "i64_" + values.map(String.init).joined(separator: "_")
        if let existing = constants[key] { return existing }
        let unique = unique("/const/\(key.replacingOccurrences(of: "-", with: "m"))")
        initializers.append(Initializer(name: unique, type: .int64, shape: [values.count], source: .int64s(values.map(Int64.init))))
        constants[key] = unique
        return unique
    }

    /// An int32 scalar constant (compared with int32 token ids).
    public mutating func int32Scalar(_ value: Int32) -> String {
        let key = "i32_\(value)"
        if let existing = constants[key] { return existing }
        let unique = unique("/const/\(key)")
        initializers.append(Initializer(name: unique, type: .int32, shape: [], source: .int32s([value])))
        constants[key] = unique
        return unique
    }

    public func graph(name: String, inputs: [ValueInfo], outputs: [ValueInfo]) -> Graph {
        Graph(name: name, inputs: inputs, outputs: outputs, nodes: nodes, initializers: initializers)
    }

    /// Renames the value `from` (a node output) to `to`: graph outputs carry the names runtimes feed.
    public mutating func rename(output from: String, to: String) {
        for i in nodes.indices {
            nodes[i].outputs = nodes[i].outputs.map { $0 == from ? to : $0 }
            nodes[i].inputs = nodes[i].inputs.map { $0 == from ? to : $0 }
        }
    }
}
