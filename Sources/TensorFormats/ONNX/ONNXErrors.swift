extension ErrorCode {
    // ONNX models (formats/onnx-read.md lists each rule)
    /// Bytes that are not protobuf: a truncated or overflowing varint, a length past the end of its
    /// message, a field number or wire type ONNX does not use, a name that is not UTF-8.
    public static let onnxWire = ErrorCode(rawValue: "onnx-wire")
    /// A ModelProto without a graph, or with two.
    public static let onnxNoGraph = ErrorCode(rawValue: "onnx-no-graph")
    /// External data whose location is absolute, climbs out with `..`, leads out of the model's folder
    /// through a symlink, or names no file.
    public static let onnxExternalPath = ErrorCode(rawValue: "onnx-external-path")
    /// External data whose offset or length is not a decimal number or lies past the end of its file.
    public static let onnxExternalRange = ErrorCode(rawValue: "onnx-external-range")
    /// A node input that no graph input, initializer or node output defines.
    public static let onnxUndefinedInput = ErrorCode(rawValue: "onnx-undefined-input")
    /// Nodes that depend on each other in a cycle, or a value two nodes produce.
    public static let onnxGraphCycle = ErrorCode(rawValue: "onnx-graph-cycle")
    /// A MatMulNBits or DequantizeLinear node whose attributes and initializers disagree.
    public static let onnxQuantNode = ErrorCode(rawValue: "onnx-quant-node")
}
