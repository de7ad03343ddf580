import ModelGraph
import TensorFormats

/// Weight-only quantization for the device (`convert … --to onnx --quant int8|int4`, formats/onnx.md):
/// a pass over the graph that replaces each linear layer's `MatMul` by ONNX Runtime's `MatMulNBits`
/// (com.microsoft; blocks bit-identical to onnxruntime's `MatMulNBitsQuantizer`, RTN asymmetric, at the
/// chosen block size; `TensorFormats.ONNXQuantBlocks`) and feeds each convolution its weight through an
/// opset-21 `DequantizeLinear` (int8 per output channel, or blocked UINT4 along the input channels).
///
/// Stays float: biases, norms, embeddings (`Gather` tables) and every other non-matrix tensor (small,
/// and where rounding errors add straight into activations), and the convolutions that read a graph input
/// or write a graph output (the UNet's `conv_in` and `conv_out`, the VAE's first and last: under 0.1% of
/// the weights, and the ones whose error no later layer averages).
public struct WeightQuantization: Sendable {
    public enum Precision: String, Sendable, CaseIterable {
        case int8, int4

        public var bits: Int { self == .int8 ? 8 : 4 }
    }

    public var precision: Precision
    /// Inputs per block of MatMulNBits, and of int4 convolution weights.
    public var blockSize: Int

    public static let defaultBlockSize = 32

    public init(precision: Precision, blockSize: Int = defaultBlockSize) {
        self.precision = precision
        self.blockSize = blockSize
    }

    static let matMulNBits = "MatMulNBits"
    static let dequantizeLinear = "DequantizeLinear"

    /// The graph with its linear and convolution weights quantized; the weights are still references,
    /// computed when written (`payloads`).
    public func apply(to graph: Graph) -> Graph {
        var initializers: [String: Initializer] = [:]
        for i in graph.initializers { initializers[i.name] = i }
        let graphInputs = Set(graph.inputs.map(\.name)), graphOutputs = Set(graph.outputs.map(\.name))
        var replaced: Set<String> = []
        var added: [Initializer] = []
        var nodes: [Node] = []
        for node in graph.nodes {
            if node.op == "MatMul", node.domain.isEmpty, node.inputs.count == 2, let b = initializers[node.inputs[1]],
               case .tensor(let name, transposed: true) = b.source {
                let n = b.shape[1], k = b.shape[0]
                let kBlocks = (k + blockSize - 1) / blockSize
                let bits = precision.bits
                let source = [n, k]
                let q = b.name + "_Q\(bits)", scales = b.name + "_scales", zeros = b.name + "_zero_points"
                added += [
                    Initializer(name: q, type: .uint8, shape: [n, kBlocks, blockSize * bits / 8],
                                source: .derived(name, Initializer.Derivation(kind: Self.matMulNBits, sourceShape: source, part: 0))),
                    Initializer(name: scales, type: .float32, shape: [n, kBlocks],
                                source: .derived(name, Initializer.Derivation(kind: Self.matMulNBits, sourceShape: source, part: 1))),
                    Initializer(name: zeros, type: .uint8, shape: [n, bits == 8 ? kBlocks : (kBlocks + 1) / 2],
                                source: .derived(name, Initializer.Derivation(kind: Self.matMulNBits, sourceShape: source, part: 2))),
                ]
                replaced.insert(b.name)
                nodes.append(Node(op: Self.matMulNBits, domain: "com.microsoft", name: node.name + "_Q\(bits)",
                                  inputs: [node.inputs[0], q, scales, zeros], outputs: node.outputs,
                                  attributes: [("K", .int(k)), ("N", .int(n)), ("bits", .int(bits)), ("block_size", .int(blockSize))]))
                continue
            }
            let edge = node.inputs.contains(where: graphInputs.contains) || node.outputs.contains(where: graphOutputs.contains)
            if node.op == "Conv", node.domain.isEmpty, node.inputs.count >= 2, let w = initializers[node.inputs[1]],
               case .tensor(let name, transposed: false) = w.source, w.shape.count == 4, !edge, !replaced.contains(w.name) {
                let kind = Self.dequantizeLinear
                let derived = { (part: Int) in Initializer.Source.derived(name, Initializer.Derivation(kind: kind, sourceShape: w.shape, part: part)) }
                var inputs = [w.name + "_quantized", w.name + "_scale"]
                var attributes: [(name: String, value: Attribute)] = []
                switch precision {
                case .int8:
                    added += [Initializer(name: inputs[0], type: .int8, shape: w.shape, source: derived(0)),
                              Initializer(name: inputs[1], type: .float32, shape: [w.shape[0]], source: derived(1))]
                    attributes = [("axis", .int(0))]
                case .int4:
                    var blocked = w.shape
                    blocked[1] = (w.shape[1] + blockSize - 1) / blockSize
                    inputs.append(w.name + "_zero_point")
                    added += [Initializer(name: inputs[0], type: .uint4, shape: w.shape, source: derived(0)),
                              Initializer(name: inputs[1], type: .float32, shape: blocked, source: derived(1)),
                              Initializer(name: inputs[2], type: .uint4, shape: blocked, source: derived(2))]
                    attributes = [("axis", .int(1)), ("block_size", .int(blockSize))]
                }
                replaced.insert(w.name)
                nodes.append(Node(op: Self.dequantizeLinear, name: node.name + "_dequantize", inputs: inputs, outputs: [w.name],
                                  attributes: attributes))
            }
            nodes.append(node)
        }
        let kept = graph.initializers.filter { !replaced.contains($0.name) }
        return Graph(name: graph.name, inputs: graph.inputs, outputs: graph.outputs, nodes: nodes, initializers: kept + added)
    }

    /// The payload source that computes the quantized initializers as the writer streams them; the
    /// three tensors of one weight are computed once (the writer emits them one after another).
    public func payloads() -> PayloadSource { QuantizedPayloads(self) }
}

/// Computes quantized blocks from the float32 weight when the writer reaches them, keeping only the
/// last weight's encoding (bounded memory: one tensor and its blocks at a time).
final class QuantizedPayloads: PayloadSource {
    let settings: WeightQuantization
    private var cached: (name: String, kind: String, parts: [[UInt8]])?

    init(_ settings: WeightQuantization) {
        self.settings = settings
    }

    override func write(_ initializer: Initializer, weights: ONNXModelWriter.Weights, to sink: OutputFile) throws {
        guard case .derived(let name, let derivation) = initializer.source else {
            return try super.write(initializer, weights: weights, to: sink)
        }
        if cached?.name != name || cached?.kind != derivation.kind {
            cached = (name, derivation.kind, try encode(try weights(name), derivation, name: name))
        }
        guard let parts = cached?.parts, derivation.part < parts.count, parts[derivation.part].count == initializer.byteCount else {
            throw TensorFormatError(.sizeMismatch, "the quantized \(initializer.name) does not have the \(initializer.byteCount) bytes its shape needs",
                                    tensor: name)
        }
        try parts[derivation.part].withUnsafeBytes { try sink.write($0) }
    }

    private func encode(_ values: [Float], _ d: Initializer.Derivation, name: String) throws -> [[UInt8]] {
        do {
            switch (d.kind, settings.precision) {
            case (WeightQuantization.matMulNBits, _):
                let w = try ONNXQuantBlocks.matMulNBits(weight: values, n: d.sourceShape[0], k: d.sourceShape[1],
                                                        bits: settings.precision.bits, blockSize: settings.blockSize)
                return [w.packed.bytes, w.scales.bytes, w.zeroPoints.bytes]
            case (_, .int8):
                let w = try ONNXQuantBlocks.quantizeInt8PerChannel(weight: values, shape: d.sourceShape)
                return [w.quantized.bytes, w.scale.bytes]
            case (_, .int4):
                let w = try ONNXQuantBlocks.quantizeBlockedUInt4(weight: values, shape: d.sourceShape, axis: 1, blockSize: settings.blockSize)
                return [w.quantized.bytes, w.scale.bytes, w.zeroPoint?.bytes ?? []]
            }
        } catch var error {
            if error.tensor == nil { error.tensor = name }
            throw error
        }
    }
}
