import ONNXProto

/// What `inspect` shows of an ONNX model's graph: opsets, operator counts, the graph's inputs and
/// outputs with element types and shapes, and initializer bytes per element type (as stored, so a
/// quantized model shows its UINT8/UINT4 bytes).
public struct ONNXGraphSummary: Sendable {
    public struct Value: Sendable {
        public var name: String
        /// `FLOAT`, `INT64`, ... or `?` when the graph does not declare it.
        public var elementType: String
        /// Each dimension as a number or its symbolic name (`batch`); nil when the rank is unknown.
        public var shape: [String]?
    }

    public struct Storage: Sendable {
        public var dataType: String
        public var initializers: Int
        public var bytes: Int
    }

    public var irVersion: Int64
    public var producer: String
    public var opsets: [(domain: String, version: Int64)]
    public var nodeCount: Int
    /// `domain::op` (domain left out for the default one) and how many nodes use it, most used first.
    public var operators: [(op: String, count: Int)]
    public var inputs: [Value]
    public var outputs: [Value]
    public var storage: [Storage]
    /// External data files, relative to the model.
    public var externalFiles: [String]

    init(_ model: ONNXModel, externalFiles: [String]) {
        irVersion = model.irVersion
        producer = model.producer + (model.producerVersion.isEmpty ? "" : " " + model.producerVersion)
        opsets = model.opsets
        nodeCount = model.nodes.count
        var counts: [String: Int] = [:]
        for node in model.nodes {
            let domain = node.domain == "ai.onnx" ? "" : node.domain
            counts[domain.isEmpty ? node.opType : "\(domain)::\(node.opType)", default: 0] += 1
        }
        operators = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { ($0.key, $0.value) }
        let initializerNames = Set(model.initializers.map { ByteKey($0.name) })
        // Graph inputs that are initializers too (older exporters list them) are weights, not inputs.
        inputs = model.inputs.filter { !initializerNames.contains(ByteKey($0.name)) }.map(Self.value)
        outputs = model.outputs.map(Self.value)
        var byType: [ONNXDataType: (Int, Int)] = [:]
        for initializer in model.initializers {
            let current = byType[initializer.dataType] ?? (0, 0)
            byType[initializer.dataType] = (current.0 + 1, current.1 + initializer.byteCount)
        }
        storage = byType.sorted { $0.value.1 != $1.value.1 ? $0.value.1 > $1.value.1 : $0.key.rawValue < $1.key.rawValue }
            .map { Storage(dataType: $0.key.name, initializers: $0.value.0, bytes: $0.value.1) }
        self.externalFiles = externalFiles
    }

    private static func value(_ info: Onnx_ValueInfoProto) -> Value {
        guard case .tensorType(let tensor)? = info.type.value else {
            return Value(name: info.name, elementType: "?", shape: nil)
        }
        let type = ONNXDataType(rawValue: tensor.elemType)?.name ?? (tensor.elemType == 0 ? "?" : "type \(tensor.elemType)")
        guard tensor.hasShape else { return Value(name: info.name, elementType: type, shape: nil) }
        let dims = tensor.shape.dim.map { dim -> String in
            switch dim.value {
            case .dimValue(let v)?: return String(v)
            case .dimParam(let p)?: return p
            case nil: return "?"
            }
        }
        return Value(name: info.name, elementType: type, shape: dims)
    }

    /// The summary as report lines (inspect's text output).
    public var lines: [String] {
        var out = ["onnx graph: ir_version \(irVersion), \(nodeCount) nodes" + (producer.isEmpty ? "" : ", produced by \(producer)")]
        out.append("  opsets: " + opsets.map { "\($0.domain.isEmpty ? "ai.onnx" : $0.domain) \($0.version)" }.joined(separator: ", "))
        out.append("  operators: " + operators.map { "\($0.op) \($0.count)" }.joined(separator: ", "))
        for (label, values) in [("input", inputs), ("output", outputs)] {
            for v in values {
                out.append("  \(label) \(v.name): \(v.elementType) \(v.shape.map { "[" + $0.joined(separator: ", ") + "]" } ?? "(shape unknown)")")
            }
        }
        out.append("  initializer bytes: " + storage.map { "\($0.dataType) \($0.bytes) in \($0.initializers)" }.joined(separator: ", "))
        if !externalFiles.isEmpty { out.append("  external data: " + externalFiles.joined(separator: ", ")) }
        return out
    }

    /// The summary as inspect's JSON report member.
    public var json: JSONValue {
        func values(_ list: [Value]) -> JSONValue {
            .array(list.map { v in
                .object([JSONMember("name", .string(v.name)), JSONMember("dtype", .string(v.elementType)),
                         JSONMember("shape", v.shape.map { .array($0.map { d in Int(d).map { .number(String($0)) } ?? .string(d) }) } ?? .null)])
            })
        }
        return .object([
            JSONMember("ir_version", .number(String(irVersion))),
            JSONMember("producer", .string(producer)),
            JSONMember("opsets", .array(opsets.map { .object([JSONMember("domain", .string($0.domain)), JSONMember("version", .number(String($0.version)))]) })),
            JSONMember("nodes", .number(String(nodeCount))),
            JSONMember("operators", .object(operators.map { JSONMember($0.op, .number(String($0.count))) })),
            JSONMember("inputs", values(inputs)),
            JSONMember("outputs", values(outputs)),
            JSONMember("initializer_bytes", .object(storage.map {
                JSONMember($0.dataType, .object([JSONMember("initializers", .number(String($0.initializers))), JSONMember("bytes", .number(String($0.bytes)))]))
            })),
            JSONMember("external_data", .array(externalFiles.map { .string($0) })),
        ])
    }
}
