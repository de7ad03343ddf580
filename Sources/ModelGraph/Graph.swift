/// A model as an operator graph, independent of any file format: values with element types and shapes
/// (symbolic dims such as "batch" or "height" where the size is left to the runtime), nodes with an
/// operator kind and attributes, and initializers that *name* the checkpoint tensor they come from and
/// are read only when a writer streams them out. Builders (`UNetGraph`, `CLIPTextGraph`, `VAEGraph`)
/// produce it from the engine's own structural descriptions; writers (`ONNX`, next Core ML) encode it.
///
/// The operator vocabulary is the ONNX standard set's (names, inputs and attributes as the ONNX operator
/// documentation defines them): it is the common language every mobile runtime and converter already
/// speaks, so a second writer maps each kind it meets instead of re-deriving the model.
public struct Graph: Sendable {
    public var name: String
    public var inputs: [ValueInfo]
    public var outputs: [ValueInfo]
    /// In topological order: every node's inputs are graph inputs, initializers or earlier outputs.
    public var nodes: [Node]
    public var initializers: [Initializer]

    public init(name: String, inputs: [ValueInfo], outputs: [ValueInfo], nodes: [Node], initializers: [Initializer]) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.nodes = nodes
        self.initializers = initializers
    }

    /// Bytes of initializer data (what a writer streams).
    public var initializerBytes: Int { initializers.reduce(0) { $0 + $1.byteCount } }
}

/// Element types of graph values and initializers.
public enum ElementType: String, Sendable {
    case float32, float16, int64, int32, uint8, int8, uint4, int4

    /// Bits per element.
    public var bits: Int {
        switch self {
        case .float32, .int32: 32
        case .float16: 16
        case .int64: 64
        case .uint8, .int8: 8
        case .uint4, .int4: 4
        }
    }
}

/// One dimension of a shape: a fixed size, or a named size the runtime chooses (the same name on two
/// inputs means the same size).
public enum Dimension: Sendable, Hashable {
    case fixed(Int)
    case symbolic(String)
}

/// A graph input or output.
public struct ValueInfo: Sendable {
    public var name: String
    public var type: ElementType
    public var shape: [Dimension]

    public init(name: String, type: ElementType, shape: [Dimension]) {
        self.name = name
        self.type = type
        self.shape = shape
    }
}

/// A node attribute's value.
public enum Attribute: Sendable, Equatable {
    case int(Int)
    case float(Float)
    case ints([Int])
    case string(String)
}

/// One operator application.
public struct Node: Sendable {
    /// The operator kind (ONNX operator name, e.g. `Conv`, `MatMul`, `MatMulNBits`).
    public var op: String
    /// "" for the standard operator set; `com.microsoft` for ONNX Runtime's contrib operators.
    public var domain: String
    public var name: String
    /// Value names; "" leaves an optional input out.
    public var inputs: [String]
    public var outputs: [String]
    /// In the order a writer emits them.
    public var attributes: [(name: String, value: Attribute)]

    public init(op: String, domain: String = "", name: String, inputs: [String], outputs: [String],
                attributes: [(name: String, value: Attribute)] = []) {
        self.op = op
        self.domain = domain
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }
}

/// A constant tensor of the graph. Weights are references to checkpoint tensors, read by the writer
/// one at a time, so no builder or writer ever holds a model's weights.
public struct Initializer: Sendable {
    public enum Source: Sendable {
        /// The checkpoint tensor of this name, widened to float32; `transposed` swaps the two axes of a
        /// 2-D weight (a linear layer's [out, in] becomes MatMul's [in, out]).
        case tensor(String, transposed: Bool)
        /// Small constants made by the builder (shapes, axes, frequencies, masks).
        case floats([Float])
        case int64s([Int64])
        case int32s([Int32])
        /// Bytes a writer pass computes from the checkpoint tensor of this name as it streams them
        /// (quantized blocks: ONNX's `WeightQuantization`), one tensor at a time like any weight.
        case derived(String, Derivation)
    }

    /// Which product of which encoding of a checkpoint tensor a derived initializer holds.
    public struct Derivation: Sendable, Hashable {
        /// The encoding (the pass that introduced it names it, e.g. `MatMulNBits`).
        public var kind: String
        /// The checkpoint tensor's shape.
        public var sourceShape: [Int]
        /// Which of the encoding's tensors (packed values, scales, zero points).
        public var part: Int

        public init(kind: String, sourceShape: [Int], part: Int) {
            self.kind = kind
            self.sourceShape = sourceShape
            self.part = part
        }
    }

    public var name: String
    public var type: ElementType
    public var shape: [Int]
    public var source: Source

    public init(name: String, type: ElementType, shape: [Int], source: Source) {
        self.name = name
        self.type = type
        self.shape = shape
        self.source = source
    }

    public var elementCount: Int { shape.reduce(1, *) }
    /// Bytes as stored (4-bit types two to a byte, rounded up).
    public var byteCount: Int { (elementCount * type.bits + 7) / 8 }
}
