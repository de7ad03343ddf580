import Foundation
import Surgery
import TensorFormats
import XCTest

/// Sharding against files huggingface_hub itself wrote (fixtures/sharded/hf, NOTES.md there).
final class ShardingTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/sharded")

    func testShardsAndIndexReproduceHuggingfaceHubByteForByte() throws {
        let manifest = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent("manifest.json"))) as? [String: Any])
        let order = try XCTUnwrap(manifest["state_dict_order"] as? [String])
        let input = try Checkpoint.open(root.appendingPathComponent("hf/model.safetensors.index.json").path)
        let plan = try ConvertPlan(checkpoint: input, dtype: nil, selection: TensorSelection())
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dms-shards-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var result = ConvertResult()
        try Converter.writeSharded(plan, base: directory.appendingPathComponent("model.safetensors").path, maxBytes: 60_000,
                                   metadata: plan.metadata(embedConfig: true), order: order, result: &result)
        let reference = root.appendingPathComponent("hf")
        let names = try FileManager.default.contentsOfDirectory(atPath: reference.path).sorted()
        XCTAssertEqual(names.count, 17)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted(), names)
        for name in names {
            XCTAssertEqual(try Data(contentsOf: directory.appendingPathComponent(name)), try Data(contentsOf: reference.appendingPathComponent(name)), name)
        }
    }

    func testOversizedTensorTakesItsOwnShardBeforeTheOpenOne() throws {
        let input = try Checkpoint.open(root.appendingPathComponent("../default").standardized.path)
        let plan = try ConvertPlan(checkpoint: input, dtype: nil, selection: TensorSelection(only: ["conv_in.*", "up_blocks.0.resnets.0.conv1.*"]))
        let ordered = ["conv_in.weight", "up_blocks.0.resnets.0.conv1.weight", "conv_in.bias", "up_blocks.0.resnets.0.conv1.bias"]
            .map { name in plan.tensors.first { $0.name == name }! }
        let shards = Converter.shardPlan(ordered, maxBytes: 10_000)
        XCTAssertEqual(shards.map { $0.map(\.name) }, [["up_blocks.0.resnets.0.conv1.weight"],
                                                       ["conv_in.weight", "conv_in.bias", "up_blocks.0.resnets.0.conv1.bias"]])
        XCTAssertEqual(Converter.shardName(base: "model.safetensors", index: 0, count: 16), "model-00001-of-00016.safetensors")
    }
}
