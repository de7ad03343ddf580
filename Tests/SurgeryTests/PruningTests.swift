import Foundation
import Surgery
import TensorFormats
import UNet
import XCTest

final class PruningTests: XCTestCase {
    private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    private func fixture(_ path: String) -> String { repository.appendingPathComponent("fixtures/" + path).path }

    private func units(_ name: String) throws -> (PruningUnits, Checkpoint) {
        let checkpoint = try Checkpoint.open(fixture(name))
        let config = try UNetConfig(json: checkpoint.configJSON!)
        let shapes = Dictionary(uniqueKeysWithValues: checkpoint.entries.map { ($0.name, $0.shape) })
        return (try PruningUnits(config: config, shapes: shapes, file: name), checkpoint)
    }

    func testCouplingGraphReadsPrunedWidthsFromShapes() throws {
        let (dense, _) = try units("engine/cond_small")
        let (pruned, _) = try units("engine/cond_pruned")
        XCTAssertEqual(dense.layers.map(\.name), pruned.layers.map(\.name))
        let resnet = try XCTUnwrap(pruned.layer(named: "down_blocks.0.resnets.0"))
        XCTAssertEqual(resnet.kind, .resnet)
        XCTAssertEqual(resnet.units, 5)       // 10 channels in groups of 2
        XCTAssertEqual(resnet.unitSize, 2)
        XCTAssertEqual(resnet.tensors.map(\.name).last, "down_blocks.0.resnets.0.conv2.weight")
        XCTAssertEqual(pruned.layer(named: "down_blocks.0.attentions.0.transformer_blocks.0.attn2")?.units, 2)
        XCTAssertEqual(dense.layer(named: "down_blocks.0.attentions.0.transformer_blocks.0.attn2")?.units, 4)
        // GEGLU inner 48 is not a multiple of 32: one unit of the whole width.
        let ff = try XCTUnwrap(pruned.layer(named: "down_blocks.0.attentions.0.transformer_blocks.0.ff"))
        XCTAssertEqual([ff.units, ff.unitSize], [1, 48])
    }

    func testTiesDropTheHigherIndexAndRatioFloors() throws {
        let (u, _) = try units("engine/ddpm_small")
        let flat = u.layers.map { [Double](repeating: 1, count: $0.units) }
        let kept = Pruner.choose(u, scores: flat, ratio: 0.3, global: false) { _ in true }
        for (layer, k) in zip(u.layers, kept) {
            let drop = Int((0.3 * Double(layer.units)).rounded(.down))
            XCTAssertEqual(k, Array(0..<(layer.units - drop)), layer.name)
        }
    }

    func testGlobalKeepsAtLeastOneUnitPerLayer() throws {
        let (u, _) = try units("engine/ddpm_small")
        // The first layer of each kind is far less important than the rest: global ranking empties it but for one unit.
        var scores = u.layers.map { [Double](repeating: 10, count: $0.units) }
        for kind in PrunableKind.allCases {
            if let first = u.layers.firstIndex(where: { $0.kind == kind }) { scores[first] = scores[first].map { _ in 0 } }
        }
        let kept = Pruner.choose(u, scores: scores, ratio: 0.2, global: true) { _ in true }
        for kind in PrunableKind.allCases {
            guard let first = u.layers.firstIndex(where: { $0.kind == kind }) else { continue }
            let total = u.layers.filter { $0.kind == kind }.reduce(0) { $0 + $1.units }
            let dropped = zip(u.layers, kept).filter { $0.0.kind == kind }.reduce(0) { $0 + $1.0.units - $1.1.count }
            XCTAssertEqual(dropped, Int((0.2 * Double(total)).rounded(.down)), kind.rawValue)
            XCTAssertGreaterThanOrEqual(kept[first].count, 1)
            if u.layers[first].units - 1 <= dropped { XCTAssertEqual(kept[first], [0], kind.rawValue) }
        }
    }

    func testMaskRoundTripsThroughItsFileForm() throws {
        let (u, _) = try units("engine/cond_list")
        let kept = u.layers.map { Array(stride(from: 0, to: $0.units, by: 2)) }
        let mask = PruningMask(units: u, kept: kept, criterion: "random", ratio: 0.5, global: true, seed: 9, sourceSHA256: "ab")
        XCTAssertEqual(try PruningMask(json: mask.fileJSON, file: "m"), mask)
        XCTAssertEqual(try PruningMask(json: mask.compactJSON, file: "m"), mask)
        XCTAssertEqual(try mask.kept(for: u, file: "m"), kept)
    }

    /// The header-only MAC count equals the engine's nominal FLOPs / 2, dense and pruned.
    func testBlockMACsMatchTheEngineFLOPs() throws {
        for name in ["engine/cond_small", "engine/cond_pruned", "engine/ddpm_pruned", "engine/cond_list"] {
            let checkpoint = try Checkpoint.open(fixture(name))
            let cost = try XCTUnwrap(UNetCost(checkpoint))
            let model = try UNet2D(checkpoint: checkpoint)
            let size = try XCTUnwrap(cost.sampleSize)
            let flops = model.forwardFLOPs(batch: 1, height: size, width: size, contextLength: cost.contextLength)
            XCTAssertEqual(Double(cost.blocks.compactMap(\.macs).reduce(0, +)) * 2, flops, name)
            XCTAssertEqual(cost.blocks.reduce(0) { $0 + $1.parameters }, checkpoint.parameterCount, name)
            XCTAssertEqual(cost.isPruned, name.hasSuffix("pruned"), name)
        }
    }
}
