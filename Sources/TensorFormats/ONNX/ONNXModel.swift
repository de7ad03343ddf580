import Foundation
import ONNXProto
import SwiftProtobuf

/// An ONNX model as the reader sees it: the small messages decoded (nodes, graph inputs and outputs,
/// opsets, metadata), each initializer's payload left where it lies in the mapped file.
///
/// `scan` walks ModelProto (field 7: graph) and GraphProto (1: node, 5: initializer, 11: input,
/// 12: output) with `ProtobufWire`, so the whole model is never decoded: a NodeProto, ValueInfoProto or
/// OperatorSetIdProto is copied and decoded with the generated `ONNXProto` types; a TensorProto is
/// decoded without its `raw_data` (field 9), whose byte range is kept instead.
struct ONNXModel {
    struct Initializer {
        enum Payload {
            /// `raw_data`: this range of the model file.
            case raw(Range<Int>)
            /// `data_location: EXTERNAL`: `length` bytes at `offset` of `location` (relative to the model).
            case external(location: String, offset: Int, length: Int?)
            /// Typed fields (`float_data`, `int32_data`, ...), decoded into the message.
            case typed
        }

        var name: String
        var dataType: ONNXDataType
        var dims: [Int]
        var elementCount: Int
        /// Bytes the tensor takes in raw form.
        var byteCount: Int
        var payload: Payload
        /// The TensorProto without `raw_data`, for typed payloads.
        var proto: Onnx_TensorProto
    }

    var irVersion: Int64 = 0
    var producer: String = ""
    var producerVersion: String = ""
    var opsets: [(domain: String, version: Int64)] = []
    var metadata: [(key: String, value: String)] = []
    var graphName: String = ""
    var nodes: [Onnx_NodeProto] = []
    var inputs: [Onnx_ValueInfoProto] = []
    var outputs: [Onnx_ValueInfoProto] = []
    var initializers: [Initializer] = []
    /// `sparse_initializer` entries, which the reader does not map to tensors.
    var sparseInitializerCount = 0

    /// The largest small message (a node, a value info) decoded into memory: bigger ones are a
    /// Constant holding weights, or hostile.
    static let maxDecodedMessage = 64 << 20

    /// True when `prefix` starts like a serialized ModelProto: field 1 (`ir_version`, a varint from 1 to
    /// 127) followed by the key of another ModelProto field. Protobuf has no magic number; exporters
    /// (torch.onnx, onnx.helper, ours) all write `ir_version` first.
    static func looksLikeModel<C: Collection>(_ prefix: C) -> Bool where C.Element == UInt8 {
        let bytes = Array(prefix.prefix(3))
        guard bytes.count == 3, bytes[0] == 0x08, (1...127).contains(bytes[1]) else { return false }
        // producer_name 2, producer_version 3, domain 4, model_version 5 (varint), doc_string 6, graph 7,
        // opset_import 8, metadata_props 14, training_info 20, functions 25, configuration 26.
        return [0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xCA, 0xD2].contains(bytes[2])
    }

    static func scan(_ bytes: UnsafeRawBufferPointer) throws(TensorFormatError) -> ONNXModel {
        var model = ONNXModel()
        var wire = ProtobufWire(bytes, range: 0..<bytes.count, context: "ModelProto")
        var graph: Range<Int>?
        while let field = try wire.next() {
            switch field.number {
            case 1:
                try wire.expect(field, .varint, "ir_version")
                model.irVersion = Int64(bitPattern: field.value)
            case 2: model.producer = try wire.string(field, "producer_name")
            case 3: model.producerVersion = try wire.string(field, "producer_version")
            case 7:
                try wire.expect(field, .lengthDelimited, "graph")
                guard graph == nil else { throw TensorFormatError(.onnxNoGraph, "the model has two graph fields") }
                graph = field.payload
            case 8:
                let set: Onnx_OperatorSetIdProto = try decode(wire, field, "opset_import")
                model.opsets.append((set.domain, set.version))
            case 14:
                let entry: Onnx_StringStringEntryProto = try decode(wire, field, "metadata_props")
                model.metadata.append((entry.key, entry.value))
            default:
                break
            }
        }
        guard let graph else { throw TensorFormatError(.onnxNoGraph, "the model has no graph") }
        try model.scanGraph(bytes, graph)
        return model
    }

    private mutating func scanGraph(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) throws(TensorFormatError) {
        var wire = ProtobufWire(bytes, range: range, context: "GraphProto")
        while let field = try wire.next() {
            switch field.number {
            case 1: nodes.append(try Self.decode(wire, field, "node"))
            case 2: graphName = try wire.string(field, "name")
            case 5:
                try wire.expect(field, .lengthDelimited, "initializer")
                initializers.append(try Self.scanTensor(bytes, field.payload))
            case 11: inputs.append(try Self.decode(wire, field, "input"))
            case 12: outputs.append(try Self.decode(wire, field, "output"))
            case 15:
                try wire.expect(field, .lengthDelimited, "sparse_initializer")
                sparseInitializerCount += 1
            default:
                break
            }
        }
    }

    /// A TensorProto: its small fields decoded, `raw_data` kept as a range, sizes checked against dims.
    static func scanTensor(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) throws(TensorFormatError) -> Initializer {
        var wire = ProtobufWire(bytes, range: range, context: "initializer at byte \(range.lowerBound)")
        var small: [Range<Int>] = []
        var raw: Range<Int>?
        while let field = try wire.next() {
            if field.number == 9 {
                try wire.expect(field, .lengthDelimited, "raw_data")
                raw = field.payload
            } else {
                small.append(field.whole)
            }
        }
        let smallBytes = wire.copy(small)
        guard smallBytes.count <= maxDecodedMessage else {
            throw TensorFormatError(.unsupported, "an initializer's typed fields take \(smallBytes.count) bytes (at most \(maxDecodedMessage) are decoded; use raw_data)")
        }
        let proto: Onnx_TensorProto
        do {
            proto = try Onnx_TensorProto(serializedBytes: smallBytes)
        } catch {
            throw TensorFormatError(.onnxWire, "initializer at byte \(range.lowerBound) is not a TensorProto: \(error)")
        }
        let name = proto.name
        guard let type = ONNXDataType(rawValue: proto.dataType), type != .string else {
            throw TensorFormatError(.unknownDType, "data_type \(proto.dataType) is not a numeric ONNX type", tensor: name)
        }
        var dims: [Int] = []
        var count = 1
        for d in proto.dims {
            guard d >= 0 else { throw TensorFormatError(.invalidShape, "dimension \(d) in \(proto.dims)", tensor: name) }
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(d))
            guard !overflow, product <= 1 << 48 else { throw TensorFormatError(.sizeOverflow, "dims \(proto.dims) have too many elements", tensor: name) }
            count = product
            dims.append(Int(d))
        }
        guard let byteCount = type.byteCount(elements: count) else {
            throw TensorFormatError(.sizeOverflow, "dims \(proto.dims) of \(type.name) overflow", tensor: name)
        }
        guard !proto.hasSegment else { throw TensorFormatError(.unsupported, "segmented tensors are not read", tensor: name) }
        let payload: Initializer.Payload
        if proto.dataLocation == .external {
            var location: String?
            var offset = 0
            var length: Int?
            for entry in proto.externalData {
                switch entry.key {
                case "location": location = entry.value
                case "offset", "length":
                    guard let value = Int(entry.value), value >= 0 else {
                        throw TensorFormatError(.onnxExternalRange, "external data \(entry.key) '\(entry.value)' is not a non-negative integer", tensor: name)
                    }
                    if entry.key == "offset" { offset = value } else { length = value }
                default: break
                }
            }
            guard let location else { throw TensorFormatError(.onnxExternalPath, "external data without a location", tensor: name) }
            if let length, length != byteCount {
                throw TensorFormatError(.sizeMismatch, "external data length \(length), but dims \(dims) of \(type.name) take \(byteCount) bytes", tensor: name)
            }
            payload = .external(location: location, offset: offset, length: length)
        } else if let raw {
            guard raw.count == byteCount else {
                throw TensorFormatError(.sizeMismatch, "raw_data has \(raw.count) bytes, but dims \(dims) of \(type.name) take \(byteCount)", tensor: name)
            }
            payload = .raw(raw)
        } else {
            let have = typedCount(proto, type)
            let want = type.bitsPerElement == 4 ? (count + 1) / 2 : count
            guard have == want, ![.uint2, .int2, .float6e2m3, .float6e3m2].contains(type) else {
                throw TensorFormatError(.sizeMismatch, "\(have) typed values of \(type.name), but dims \(dims) need \(want)", tensor: name)
            }
            payload = .typed
        }
        return Initializer(name: name, dataType: type, dims: dims, elementCount: count, byteCount: byteCount, payload: payload, proto: proto)
    }

    /// Values in the typed field ONNX uses for `type` (onnx.proto's comments on each field; 4-bit types
    /// pack two elements in each int32_data value).
    static func typedCount(_ proto: Onnx_TensorProto, _ type: ONNXDataType) -> Int {
        switch type {
        case .float: return proto.floatData.count
        case .double: return proto.doubleData.count
        case .int64: return proto.int64Data.count
        case .uint32, .uint64: return proto.uint64Data.count
        case .complex64: return proto.floatData.count / 2
        case .complex128: return proto.doubleData.count / 2
        default: return proto.int32Data.count
        }
    }

    /// A typed payload as the little-endian bytes `raw_data` would hold.
    static func typedBytes(_ proto: Onnx_TensorProto, _ type: ONNXDataType) -> [UInt8] {
        var out: [UInt8] = []
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
        switch type {
        case .float, .complex64: proto.floatData.forEach { append($0.bitPattern) }
        case .double, .complex128: proto.doubleData.forEach { append($0.bitPattern) }
        case .int64: proto.int64Data.forEach { append($0) }
        case .uint32: proto.uint64Data.forEach { append(UInt32(truncatingIfNeeded: $0)) }
        case .uint64: proto.uint64Data.forEach { append($0) }
        case .int32: proto.int32Data.forEach { append($0) }
        case .int16, .uint16, .float16, .bfloat16: proto.int32Data.forEach { append(UInt16(truncatingIfNeeded: $0)) }
        case .uint4, .int4, .float4e2m1:
            // int32_data holds two 4-bit elements per value, already packed (onnx.proto).
            proto.int32Data.forEach { out.append(UInt8(truncatingIfNeeded: $0)) }
        default: proto.int32Data.forEach { out.append(UInt8(truncatingIfNeeded: $0)) }
        }
        return out
    }

    /// Decodes a small message with the generated type.
    private static func decode<M: SwiftProtobuf.Message>(_ wire: ProtobufWire, _ field: ProtobufWire.Field, _ name: String) throws(TensorFormatError) -> M {
        try wire.expect(field, .lengthDelimited, name)
        guard field.payload.count <= maxDecodedMessage else {
            throw TensorFormatError(.unsupported, "a \(name) of \(field.payload.count) bytes (at most \(maxDecodedMessage) are decoded)")
        }
        do {
            return try M(serializedBytes: wire.copy([field.payload]))
        } catch {
            throw TensorFormatError(.onnxWire, "\(wire.context): field \(name) at byte \(field.payload.lowerBound) does not decode: \(error)")
        }
    }
}
