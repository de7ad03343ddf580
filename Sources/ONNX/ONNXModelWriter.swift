import Foundation
import ModelGraph
import ONNXProto
import SwiftProtobuf
import TensorFormats

/// Writes a `ModelGraph.Graph` as an ONNX model (formats/onnx.md): IR version 10, the default domain at
/// opset 21, and `com.microsoft` opset 1 only when a node uses it.
///
/// Memory stays bounded whatever the model's size: swift-protobuf serializes the model and the graph
/// without initializers (a few hundred kilobytes of nodes), and each initializer is appended as its own
/// GraphProto field-5 record, its `raw_data` streamed from the checkpoint one tensor at a time. Models
/// whose weights pass protobuf's 2 GB limit keep them as external data in `<model>_data` beside the model
/// (relative `location`, `offset`, `length`; offsets 4 KiB-aligned), as onnx and ONNX Runtime read them.
public enum ONNXModelWriter {
    public static let opset = 21
    public static let irVersion: Int64 = 10
    public static let contribOpset = 1
    /// Above this many bytes of initializers the weights go to external data (protobuf's 2 GiB message
    /// limit, less room for the graph itself).
    public static let inlineLimit = 2_000_000_000
    /// Alignment of external data offsets (a page, so runtimes can map them).
    public static let externalAlignment = 4096

    /// Reads a checkpoint tensor by name, widened to float32.
    public typealias Weights = (String) throws -> [Float]

    /// The path of the external data file of a model at `path`.
    public static func externalDataPath(_ path: String) -> String { path + "_data" }

    /// Writes `graph` to `path` (and its external data beside it when the weights pass the inline limit,
    /// or always with `externalData`). The returned files are written but not committed: the caller
    /// commits them, together with the other files of a pipeline, once everything is written. `progress`
    /// gets the initializer bytes written so far.
    /// `metadata` goes to the model's `metadata_props` (the model's config as `dmsurgery.config`, so that
    /// the file describes itself to dmsurgery's reader as a safetensors file does).
    public static func write(_ graph: Graph, to path: String, force: Bool = false, externalData: Bool = false,
                             metadata: [(key: String, value: String)] = [],
                             weights: Weights, payloads: PayloadSource? = nil,
                             progress: (Int) -> Void = { _ in }) throws -> [OutputFile] {
        let external = externalData || graph.initializerBytes > inlineLimit
        let source = payloads ?? PayloadSource()
        var model = try modelProto(graph)
        model.metadataProps = metadata.map { entry($0.key, $0.value) }
        let graphProto = try graphProto(graph)
        let modelBytes: [UInt8] = try model.serializedBytes()
        let graphBytes: [UInt8] = try graphProto.serializedBytes()

        // Plan: each initializer's metadata (and external placement), then the sizes that frame them.
        var metas: [[UInt8]] = []
        var offsets: [Int?] = []
        var dataEnd = 0
        let dataName = (externalDataPath(path) as NSString).lastPathComponent
        for initializer in graph.initializers {
            var tensor = Onnx_TensorProto()
            tensor.name = initializer.name
            tensor.dims = initializer.shape.map(Int64.init)
            tensor.dataType = Int32(dataType(initializer.type).rawValue)
            if external && isWeight(initializer) {
                let offset = (dataEnd + externalAlignment - 1) / externalAlignment * externalAlignment
                tensor.dataLocation = .external
                tensor.externalData = [entry("location", dataName), entry("offset", String(offset)),
                                       entry("length", String(initializer.byteCount))]
                dataEnd = offset + initializer.byteCount
                offsets.append(offset)
            } else {
                offsets.append(nil)
            }
            metas.append(try tensor.serializedBytes())
        }
        var recordLengths: [Int] = []
        for (meta, offset) in zip(metas, offsets) {
            let payload = offset == nil ? ProtobufFraming.fieldSize(field: 9, length: graph.initializers[recordLengths.count].byteCount) : 0
            recordLengths.append(meta.count + payload)
        }
        let graphLength = graphBytes.count + recordLengths.reduce(0) { $0 + ProtobufFraming.fieldSize(field: 5, length: $1) }

        let out = try OutputFile(path: path, force: force)
        var files = [out]
        let data = external ? try OutputFile(path: externalDataPath(path), force: force) : nil
        if let data { files.append(data) }
        do {
            try out.write(modelBytes)
            try out.write(ProtobufFraming.key(field: 7) + ProtobufFraming.varint(UInt64(graphLength)))
            try out.write(graphBytes)
            var dataWritten = 0, done = 0
            for (i, initializer) in graph.initializers.enumerated() {
                try out.write(ProtobufFraming.key(field: 5) + ProtobufFraming.varint(UInt64(recordLengths[i])) + metas[i])
                let sink: OutputFile
                if let offset = offsets[i], let data {
                    if offset > dataWritten { try data.write([UInt8](repeating: 0, count: offset - dataWritten)) }
                    dataWritten = offset + initializer.byteCount
                    sink = data
                } else {
                    try out.write(ProtobufFraming.key(field: 9) + ProtobufFraming.varint(UInt64(initializer.byteCount)))
                    sink = out
                }
                try source.write(initializer, weights: weights, to: sink)
                done += initializer.byteCount
                progress(done)
            }
        } catch {
            for file in files { file.discard() }
            throw error
        }
        return files
    }

    /// With external data, every initializer of 1 KiB or more goes to the data file; small constants
    /// (shapes, axes, scalars) stay in the model, where tools that read the graph alone still see them.
    private static func isWeight(_ initializer: Initializer) -> Bool { initializer.byteCount >= 1024 }

    private static func entry(_ key: String, _ value: String) -> Onnx_StringStringEntryProto {
        var e = Onnx_StringStringEntryProto()
        e.key = key
        e.value = value
        return e
    }

    static func dataType(_ type: ElementType) -> Onnx_TensorProto.DataType {
        switch type {
        case .float32: .float
        case .float16: .float16
        case .int64: .int64
        case .int32: .int32
        case .uint8: .uint8
        case .int8: .int8
        case .uint4: .uint4
        case .int4: .int4
        }
    }

    static func modelProto(_ graph: Graph) throws -> Onnx_ModelProto {
        var model = Onnx_ModelProto()
        model.irVersion = irVersion
        model.producerName = "dmsurgery"
        var standard = Onnx_OperatorSetIdProto()
        standard.domain = ""
        standard.version = Int64(opset)
        model.opsetImport = [standard]
        if graph.nodes.contains(where: { $0.domain == "com.microsoft" }) {
            var contrib = Onnx_OperatorSetIdProto()
            contrib.domain = "com.microsoft"
            contrib.version = Int64(contribOpset)
            model.opsetImport.append(contrib)
        }
        return model
    }

    static func graphProto(_ graph: Graph) throws -> Onnx_GraphProto {
        var g = Onnx_GraphProto()
        g.name = graph.name
        g.input = graph.inputs.map(valueInfo)
        g.output = graph.outputs.map(valueInfo)
        g.node = graph.nodes.map { node in
            var n = Onnx_NodeProto()
            n.name = node.name
            n.opType = node.op
            n.domain = node.domain
            n.input = node.inputs
            n.output = node.outputs
            n.attribute = node.attributes.map { name, value in
                var a = Onnx_AttributeProto()
                a.name = name
                switch value {
                case .int(let i):
                    a.type = .int
                    a.i = Int64(i)
                case .float(let f):
                    a.type = .float
                    a.f = f
                case .ints(let list):
                    a.type = .ints
                    a.ints = list.map(Int64.init)
                case .string(let s):
                    a.type = .string
                    a.s = Data(s.utf8)
                }
                return a
            }
            return n
        }
        return g
    }

    static func valueInfo(_ v: ValueInfo) -> Onnx_ValueInfoProto {
        var info = Onnx_ValueInfoProto()
        info.name = v.name
        var tensor = Onnx_TypeProto.Tensor()
        tensor.elemType = Int32(dataType(v.type).rawValue)
        var shape = Onnx_TensorShapeProto()
        shape.dim = v.shape.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            switch d {
            case .fixed(let n): dim.dimValue = Int64(n)
            case .symbolic(let s): dim.dimParam = s
            }
            return dim
        }
        tensor.shape = shape
        var type = Onnx_TypeProto()
        type.tensorType = tensor
        info.type = type
        return info
    }
}

/// Produces initializers' bytes (little-endian, as ONNX stores raw_data) while the writer streams them.
/// A subclass adds sources a writer pass introduced (quantized blocks).
open class PayloadSource {
    public init() {}

    /// Writes the initializer's bytes to `sink`.
    open func write(_ initializer: Initializer, weights: ONNXModelWriter.Weights, to sink: OutputFile) throws {
        switch initializer.source {
        case .tensor(let name, let transposed):
            let values = try weights(name)
            guard values.count == initializer.elementCount else {
                throw TensorFormatError(.sizeMismatch, "\(values.count) values where \(initializer.elementCount) are expected", tensor: name)
            }
            if transposed {
                try Self.writeFloats(Self.transpose(values, rows: initializer.shape[1], columns: initializer.shape[0]), to: sink)
            } else {
                try Self.writeFloats(values, to: sink)
            }
        case .floats(let values): try Self.writeFloats(values, to: sink)
        case .int64s(let values): try values.map { $0.littleEndian }.withUnsafeBytes { try sink.write($0) }
        case .int32s(let values): try values.map { $0.littleEndian }.withUnsafeBytes { try sink.write($0) }
        case .derived(let name, let derivation):
            throw TensorFormatError(.unsupported, "\(initializer.name) is a \(derivation.kind) encoding that this payload source does not compute",
                                    tensor: name)
        }
    }

    public static func writeFloats(_ values: [Float], to sink: OutputFile) throws {
        let little = values.map { $0.bitPattern.littleEndian }
        try little.withUnsafeBytes { try sink.write($0) }
    }

    /// A [rows, columns] matrix as [columns, rows].
    public static func transpose(_ m: [Float], rows: Int, columns: Int) -> [Float] {
        var out = [Float](repeating: 0, count: m.count)
        m.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for r in 0..<rows {
                    for c in 0..<columns { dst[c * rows + r] = src[r * columns + c] }
                }
            }
        }
        return out
    }
}
