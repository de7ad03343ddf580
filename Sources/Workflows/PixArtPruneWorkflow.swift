import Diffusion
import Foundation
import Surgery
import TensorFormats
import TensorMath
import UNet

/// `prune --depth-keep N` / `--depth-blocks LIST` on a PixArt transformer: whole blocks cut, the kept
/// ones copied from the teacher by `PixArtDepthPlan`'s map (formats/pixart.md), written as a diffusers
/// folder (or one safetensors file / stream carrying its config).
enum PixArtPruneWorkflow {
    static func depth(_ s: PruneSettings) throws {
        let start = Date()
        try InputSet.declare(inputs: [(s.model, "MODEL")], outputs: [(s.output, "OUT")])
        guard let output = s.output else { throw UsageError("--depth-keep and --depth-blocks need OUT") }
        guard s.ratio == nil, s.criterion == nil, s.mask == nil, s.emitMask == nil, s.depth == nil else {
            throw UsageError("--depth-keep and --depth-blocks cut whole blocks only: --ratio, --criterion, --mask, --emit-mask and --depth do not combine with them")
        }
        let checkpoint = try openCheckpoint(s.model, s.open, randomAccess: true).withRandomAccess()
        guard let configJSON = checkpoint.configJSON, PixArtConfig.describes(json: configJSON) else {
            throw SurgeryError(.depthUnsupported, "--depth-keep and --depth-blocks cut PixArt transformers (PixArtTransformer2DModel); use --depth for UNets",
                               file: s.model)
        }
        let config: PixArtConfig
        do { config = try PixArtConfig(json: configJSON) } catch let error as UNetError { throw located(error, file: s.model) }
        let kept: [Int]
        if let n = s.depthKeep {
            guard (1...config.numLayers).contains(n) else {
                throw SurgeryError(.depthUnsupported, "--depth-keep \(n): the teacher has \(config.numLayers) blocks", file: s.model)
            }
            kept = PixArtDepthPlan.evenlySpaced(n, of: config.numLayers)
        } else {
            kept = s.depthBlocks ?? []
        }
        let plan = try PixArtDepthPlan(configJSON: configJSON, config: config, names: checkpoint.entries.map(\.name), kept: kept,
                                       file: s.model)
        try DepthPruneWorkflow.write(plan, from: checkpoint, to: output, s)
        try checkpoint.finish()
        note("kept blocks \(kept.map(String.init).joined(separator: ",")) of \(config.numLayers): \(plan.copies.count) tensors copied, "
             + "\(plan.dropped.count) dropped (" + String(format: "%.2f s", Date().timeIntervalSince(start)) + ")", quiet: s.quiet)
    }

    /// The Taylor criterion's data for a PixArt transformer: `x0` [N, C, H, W] latents, `cond` [N, T, caption
    /// width] and optionally `cond_mask` [N, T] (formats/pixart.md).
    static func taylor(_ s: PruneSettings) throws -> PixArtTaylorImportance {
        let file = s.data!
        let data = try openCheckpoint(file, s.open, randomAccess: true).withRandomAccess()
        func read(_ name: String) throws -> Tensor? {
            guard let entry = data.entry(named: name) else { return nil }
            return Tensor(shape: entry.shape, data: try data.floats(of: entry))
        }
        guard let x0 = try read("x0") else { throw TensorFormatError(.missingTensor, "missing", file: file, tensor: "x0") }
        guard let cond = try read("cond") else { throw TensorFormatError(.missingTensor, "missing", file: file, tensor: "cond") }
        let schedulerConfig = try loadSchedulerConfig(model: s.model, explicit: s.scheduler)
        var importance = PixArtTaylorImportance(x0: x0, context: cond, mask: try read("cond_mask"), schedule: NoiseSchedule(schedulerConfig),
                                                seed: s.seed, steps: s.timesteps ?? schedulerConfig.numTrainTimesteps)
        let quiet = s.quiet
        importance.progress = { step, t, loss in
            if step % 50 == 0 { note("taylor: step \(step), t \(t), loss \(formatNumber(Double(loss)))", quiet: quiet) }
        }
        return importance
    }
}
