import Foundation
import ONNXProto
import TensorFormats
import XCTest

/// Read commands on ONNX models through the binary: a UNet written in the exporter's conventions
/// (formats/onnx.md: diffusers names, Linear weights [in, out] as MatMul B, MatMulNBits and
/// DequantizeLinear for int8) runs forward as its safetensors original does, and inspect reports the graph.
final class ONNXReadCLITests: XCTestCase {
    private enum Weights { case float, int8 }

    /// A graph that holds `folder`'s UNet weights as the exporter stores them: every 2-D weight the B of
    /// a MatMul (transposed, or MatMulNBits with 8 bits), every 4-D one a Conv weight (or int8
    /// DequantizeLinear), the rest plain initializers, with config.json beside it.
    private func writeONNX(from folder: String, to directory: URL, weights: Weights) throws {
        let checkpoint = try Checkpoint.open(folder)
        var graph = Onnx_GraphProto()
        graph.name = "unet"
        var input = Onnx_ValueInfoProto()
        input.name = "x"
        graph.input = [input]
        func initializer(_ name: String, _ type: ONNXDataType, _ dims: [Int], _ bytes: [UInt8]) {
            var tensor = Onnx_TensorProto()
            tensor.name = name
            tensor.dataType = type.rawValue
            tensor.dims = dims.map(Int64.init)
            tensor.rawData = Data(bytes)
            graph.initializer.append(tensor)
        }
        func node(_ op: String, _ inputs: [String], _ output: String, domain: String = "", _ ints: [(String, Int)] = []) {
            var n = Onnx_NodeProto()
            n.opType = op
            n.domain = domain
            n.input = inputs
            n.output = [output]
            n.attribute = ints.map { name, value in
                var a = Onnx_AttributeProto()
                a.name = name
                a.type = .int
                a.i = Int64(value)
                return a
            }
            graph.node.append(n)
        }
        for entry in checkpoint.entries {
            let values = try checkpoint.floats(of: entry)
            let bytes = values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
            switch (entry.shape.count, weights) {
            case (2, .float):
                let (n, k) = (entry.shape[0], entry.shape[1])
                var transposed = [Float](repeating: 0, count: values.count)
                for r in 0..<n { for c in 0..<k { transposed[c * n + r] = values[r * k + c] } }
                initializer(entry.name, .float, [k, n], transposed.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) })
                node("MatMul", ["x", entry.name], entry.name + "/out")
            case (2, .int8):
                let (n, k) = (entry.shape[0], entry.shape[1])
                let q = try ONNXQuantBlocks.matMulNBits(weight: values, n: n, k: k, bits: 8, blockSize: 32)
                for (suffix, tensor) in [("_Q8", q.packed), ("_scales", q.scales), ("_zero_points", q.zeroPoints)] {
                    initializer(entry.name + suffix, tensor.dataType, tensor.shape, tensor.bytes)
                }
                node("MatMulNBits", ["x", entry.name + "_Q8", entry.name + "_scales", entry.name + "_zero_points"], entry.name + "/out",
                     domain: "com.microsoft", [("K", k), ("N", n), ("bits", 8), ("block_size", 32)])
            case (4, .int8):
                let q = try ONNXQuantBlocks.quantizeInt8PerChannel(weight: values, shape: entry.shape)
                initializer(entry.name + "_quantized", q.quantized.dataType, q.quantized.shape, q.quantized.bytes)
                initializer(entry.name + "_scale", q.scale.dataType, q.scale.shape, q.scale.bytes)
                node("DequantizeLinear", [entry.name + "_quantized", entry.name + "_scale"], entry.name, [("axis", 0)])
            default:
                initializer(entry.name, .float, entry.shape, bytes)
            }
        }
        var opset = Onnx_OperatorSetIdProto()
        opset.version = 21
        var model = Onnx_ModelProto()
        model.irVersion = 10
        model.opsetImport = [opset]
        model.graph = graph
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try model.serializedData().write(to: directory.appendingPathComponent("model.onnx"))
        try FileManager.default.copyItem(atPath: folder + "/config.json", toPath: directory.appendingPathComponent("config.json").path)
    }

    private func forward(_ model: String, _ io: String, _ out: String) throws -> [Float] {
        let result = try CLI.run(["forward", "--model", model, "--inputs", io, "--output", out, "-q"])
        XCTAssertEqual(result.status, 0, result.stderr)
        return try Checkpoint.open(out).floats(named: "sample")
    }

    func testForwardOnAnONNXModelFolderEqualsTheSafetensorsForward() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = CLI.fixture("engine/cond_small")
        let io = source + "/io.safetensors"
        let reference = try forward(source, io, directory.appendingPathComponent("a.safetensors").path)
        let float = directory.appendingPathComponent("float")
        try writeONNX(from: source, to: float, weights: .float)
        let fromONNX = try forward(float.path, io, directory.appendingPathComponent("b.safetensors").path)
        XCTAssertEqual(fromONNX.map(\.bitPattern), reference.map(\.bitPattern))
        let same = try CLI.run(["diff", source, float.path + "/model.onnx"])
        XCTAssertEqual(same.status, 0, String(decoding: same.stdout, as: UTF8.self) + same.stderr)

        let int8 = directory.appendingPathComponent("int8")
        try writeONNX(from: source, to: int8, weights: .int8)
        let quantized = try forward(int8.path, io, directory.appendingPathComponent("c.safetensors").path)
        let scale = reference.map(abs).max() ?? 1
        let error = zip(quantized, reference).map { abs($0 - $1) }.max() ?? 0
        XCTAssertGreaterThan(error, 0, "int8 weights change the output")
        XCTAssertLessThan(error / scale, 0.05, "int8 weights stay close")
        let converted = directory.appendingPathComponent("back.safetensors").path
        XCTAssertEqual(try CLI.run(["convert", int8.path, converted, "-q"]).status, 0)
        XCTAssertEqual(Set(try Checkpoint.open(converted).entries.map(\.name)), Set(try Checkpoint.open(source).entries.map(\.name)))
    }

    func testInspectReportsTheGraphInTextAndJSON() throws {
        let model = CLI.fixture("onnx/tiny-int4.onnx")
        let result = try CLI.run(["inspect", model])
        XCTAssertEqual(result.status, 0, result.stderr)
        let text = String(decoding: result.stdout, as: UTF8.self)
        XCTAssertTrue(text.contains("operators: com.microsoft::MatMulNBits 2"), text)
        XCTAssertTrue(text.contains("input x: FLOAT [batch, 40]"), text)
        XCTAssertTrue(text.contains("initializer bytes: FLOAT 1356 in 7, UINT4 774 in 2, UINT8 297 in 4, INT64 16 in 1"), text)
        let json = try CLI.run(["inspect", "--json", model])
        XCTAssertEqual(json.status, 0, json.stderr)
        let parsed = try XCTUnwrap(JSONSerialization.jsonObject(with: json.stdout) as? [String: Any])
        let graph = try XCTUnwrap(parsed["onnx_graph"] as? [String: Any])
        XCTAssertEqual((graph["operators"] as? [String: Any])?["com.microsoft::MatMulNBits"] as? Int, 2)
        XCTAssertEqual(((graph["outputs"] as? [[String: Any]])?.first)?["name"] as? String, "lin_out")
        XCTAssertEqual(((graph["initializer_bytes"] as? [String: Any])?["UINT4"] as? [String: Any])?["bytes"] as? Int, 774)
    }
}
