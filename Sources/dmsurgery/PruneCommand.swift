import ArgumentParser
import Diffusion
import Foundation
import Surgery
import TensorFormats
import TensorMath
import Training
import UNet

/// Importance criteria `prune` offers.
enum PruneCriterion: String, CaseIterable, ExpressibleByArgument {
    case l1, l2, taylor, random
}

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Structured pruning of a diffusers UNet: drop GroupNorm groups, attention heads and GEGLU width.",
        discussion: """
        Prunes internal widths only, so every block keeps its output width: ResNet conv1 outputs in whole \
        GroupNorm groups (with conv1's bias, time_emb_proj rows, norm2 and conv2 inputs), whole attention \
        heads (to_q/to_k/to_v rows and biases, to_out.0 columns), and GEGLU feed-forward inner width in \
        units of 32 (both halves of ff.net.0.proj, ff.net.2 columns). Every prunable layer drops \
        floor(RATIO x its units) of its least important units (default ratio 0.5); --global ranks the \
        units of each kind across layers instead, keeping at least one per layer. Ties keep the lower index.

        Criteria: l1 (mean |w| over every entry a unit removes), l2 (root mean square), random (--seed), \
        taylor (|w * dL/dw| summed over those entries, L the denoising MSE on --data with one fixed noise \
        draw, accumulated over timesteps 0, 1, ... until the loss falls under 5% of its maximum, as \
        Diff-Pruning). --data is a safetensors file with `x0` [N,C,H,W] and, for conditional models, \
        `cond` [N,S,D] (formats/training-data.md).

        --emit-mask writes the chosen mask (formats/mask.md) and, without OUT, nothing else; --mask \
        applies a mask instead of choosing one. OUT is one safetensors file or - : pruned tensors are \
        byte-exact slices of the dense ones in their own dtype, every width is readable from the shapes, \
        the base config travels as dmsurgery.config and the mask as dmsurgery.mask.

        Exit status: 0 success, 2 invalid or unreadable input (a mask that does not fit the model names \
        the layer), 64 usage error.
        """
    )

    @Argument(help: "Model: a diffusers folder, a checkpoint with dmsurgery.config metadata, or -.")
    var model: String

    @Argument(help: "Output safetensors file, or - for standard output.")
    var output: String?

    @Option(help: ArgumentHelp("Fraction of each layer's units to drop, in [0, 1) (default 0.5).", valueName: "r"))
    var ratio: Double?

    @Option(help: "Importance criterion (default l1).")
    var criterion: PruneCriterion?

    @Option(help: "Seed of the random criterion and of Taylor's fixed noise.")
    var seed: UInt64 = 0

    @Flag(help: "Rank units across layers of the same kind instead of layer by layer.")
    var global = false

    @Option(help: ArgumentHelp("Prune only layers whose name matches this glob (repeatable), e.g. 'up_blocks.*'.", valueName: "glob"))
    var only: [String] = []

    @Option(help: ArgumentHelp("Apply this mask instead of choosing one (- for standard input).", valueName: "file"))
    var mask: String?

    @Option(name: .customLong("emit-mask"), help: ArgumentHelp("Write the mask to this file (- for standard output).", valueName: "file"))
    var emitMask: String?

    @Option(help: ArgumentHelp("Taylor data: safetensors with x0 [N,C,H,W] and cond [N,S,D].", valueName: "file"))
    var data: String?

    @Option(help: ArgumentHelp("Taylor: timesteps visited, evenly spaced from 0 (default every training timestep).", valueName: "n"))
    var timesteps: Int?

    @Option(help: "scheduler_config.json to use instead of the model's (taylor).")
    var scheduler: String?

    @OptionGroup var input: InputOptions
    @OptionGroup var binary: BinaryOutputOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard output != nil || emitMask != nil else { throw ValidationError("give OUT, --emit-mask FILE, or both") }
        if output == "-" && emitMask == "-" { throw ValidationError("OUT and --emit-mask cannot both be standard output") }
        if let ratio, !(ratio >= 0 && ratio < 1) { throw ValidationError("--ratio must be in [0, 1) (got \(ratio))") }
        if mask != nil && (ratio != nil || criterion != nil || global || !only.isEmpty) {
            throw ValidationError("--mask applies a given mask: --ratio, --criterion, --global and --only do not apply")
        }
        if criterion == .taylor && data == nil { throw ValidationError("--criterion taylor needs --data FILE") }
        if criterion != .taylor && (data != nil || timesteps != nil || scheduler != nil) {
            throw ValidationError("--data, --timesteps and --scheduler apply to --criterion taylor only")
        }
        if let timesteps, timesteps < 1 { throw ValidationError("--timesteps must be at least 1") }
        if model == "-" && (mask == "-" || data == "-") { throw ValidationError("only one input can be standard input") }
    }

    func run() throws {
        try runCommand {
            let start = Date()
            let checkpoint = try openCheckpoint(model, input, randomAccess: true).withRandomAccess()
            guard let configJSON = checkpoint.configJSON else {
                throw TensorFormatError(.invalidConfig, "no diffusers config (config.json beside the weights or dmsurgery.config metadata)", file: model)
            }
            let config: UNetConfig
            do { config = try UNetConfig(json: configJSON) } catch let error as UNetError { throw located(error, file: model) }
            let units = try PruningUnits(config: config, shapes: Dictionary(checkpoint.entries.map { ($0.name, $0.shape) }, uniquingKeysWith: { first, _ in first }),
                                         file: model)
            let hash = try Pruner.tensorsSHA256(checkpoint)
            let chosen = try choose(units, checkpoint: checkpoint, config: config, hash: hash)
            let kept = try chosen.kept(for: units, file: mask ?? model)

            let dropped = zip(units.layers, kept).reduce(0) { $0 + ($1.0.units - $1.1.count) }
            let total = units.layers.reduce(0) { $0 + $1.units }
            if let output {
                var metadata = checkpoint.metadata ?? Metadata()
                metadata[MetadataKey.config] = configJSON
                metadata[MetadataKey.mask] = chosen.compactJSON
                let bar = ProgressBar("prune", total: checkpoint.byteCount, quiet: common.quiet)
                defer { bar.finish() }
                let out = try OutputFile(path: output, force: binary.force)
                let result = try Pruner.write(checkpoint, units: units, kept: kept, metadata: metadata, to: out, progress: bar.update)
                try out.commit()
                try checkpoint.finish()
                let specs = Pruner.outputSpecs(checkpoint, units: units, kept: kept)
                let parameters = specs.reduce(0) { $0 + $1.shape.reduce(1, *) }
                note("wrote \(output): \(formatCount(result.tensors)) tensors, \(formatCount(parameters)) of \(formatCount(checkpoint.parameterCount)) parameters, \(formatBytes(result.bytesWritten))", quiet: common.quiet)
            }
            if let emitMask {
                // Text: a terminal is a fine place for it.
                let out = try OutputFile(path: emitMask, force: true)
                try out.write(Array(chosen.fileJSON.utf8))
                try out.commit()
            }
            note("\(chosen.criterion): dropped \(dropped) of \(total) units in \(units.layers.count) layers ("
                 + String(format: "%.2f s", Date().timeIntervalSince(start)) + ")", quiet: common.quiet)
        }
    }

    /// The mask: read from --mask, or chosen by the criterion.
    private func choose(_ units: PruningUnits, checkpoint: Checkpoint, config: UNetConfig, hash: String) throws -> PruningMask {
        if let mask {
            let text: String
            if mask == "-" {
                text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            } else {
                do { text = try String(contentsOfFile: mask, encoding: .utf8) } catch {
                    throw TensorFormatError(.io, "cannot read the mask: \(error.localizedDescription)", file: mask)
                }
            }
            let given = try PruningMask(json: text, file: mask)
            if !given.sourceSHA256.isEmpty && given.sourceSHA256 != hash {
                note("warning: the mask was chosen on other weights (tensors_sha256 \(given.sourceSHA256.prefix(12))…)", quiet: common.quiet)
            }
            return given
        }
        let criterion = self.criterion ?? .l1
        let ratio = self.ratio ?? 0.5
        let importance: ImportanceCriterion
        switch criterion {
        case .l1: importance = MagnitudeImportance(squared: false)
        case .l2: importance = MagnitudeImportance(squared: true)
        case .random: importance = RandomImportance(seed: seed)
        case .taylor: importance = try taylor(config: config)
        }
        let scores: [[Double]]
        do { scores = try importance.scores(units, checkpoint: checkpoint) } catch let error as UNetError {
            // Bad inputs come from the data file (x0's shape, cond's); everything else is the model's.
            throw located(error, file: error.kind == .badInput ? data ?? model : model)
        }
        let kept = Pruner.choose(units, scores: scores, ratio: ratio, global: global) { layer in
            only.isEmpty || only.contains { globMatches($0, layer.name) }
        }
        return PruningMask(units: units, kept: kept, criterion: importance.name, ratio: ratio, global: global,
                           seed: criterion == .l1 || criterion == .l2 ? nil : seed, sourceSHA256: hash)
    }

    private func taylor(config: UNetConfig) throws -> TaylorImportance {
        let file = data!
        let set = try TrainingData(checkpoint: try openCheckpoint(file, input, randomAccess: true), file: file,
                                   role: .data, config: config)
        guard let x0 = set.x0 else { throw TensorFormatError(.missingTensor, "missing", file: file, tensor: "x0") }
        let context = set.cond
        let schedulerConfig: SchedulerConfig
        do { schedulerConfig = try loadSchedulerConfig(model: model, explicit: scheduler) } catch let error as SchedulerConfigError {
            throw TensorFormatError(.invalidConfig, error.description, file: scheduler ?? model)
        }
        var importance = TaylorImportance(x0: x0, context: context, schedule: NoiseSchedule(schedulerConfig), seed: seed,
                                          steps: timesteps ?? schedulerConfig.numTrainTimesteps)
        let quiet = common.quiet
        importance.progress = { step, t, loss in
            if step % 50 == 0 { note("taylor: step \(step), t \(t), loss \(formatNumber(Double(loss)))", quiet: quiet) }
        }
        return importance
    }
}
