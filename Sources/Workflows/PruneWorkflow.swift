import Diffusion
import Foundation
import Surgery
import TensorFormats
import Training
import UNet

/// Importance criteria `prune` offers.
public enum PruneCriterion: String, CaseIterable, Sendable {
    case l1, l2, taylor, random
}

/// What `prune` is told, as plain values.
public struct PruneSettings: Sendable {
    public var model: String
    public var output: String?
    public var emitMask: String?
    public var ratio: Double?
    /// A BK-SDM depth variant to cut first (formats/depth.md); width options then prune the student.
    public var depth: DepthVariant?
    /// PixArt transformers: keep this many blocks, spread evenly (formats/pixart.md).
    public var depthKeep: Int?
    /// PixArt transformers: keep these teacher blocks, ascending.
    public var depthBlocks: [Int]?
    public var criterion: PruneCriterion?
    public var seed: UInt64 = 0
    public var global = false
    public var only: [String] = []
    /// A mask file to apply instead of choosing one (`-` is standard input).
    public var mask: String?
    /// Taylor: the data file, the timesteps visited and the scheduler.
    public var data: String?
    public var timesteps: Int?
    public var scheduler: String?
    public var open = OpenOptions()
    public var force = false
    public var quiet = false

    public init(model: String) { self.model = model }
}

/// `prune`'s body: read the model and its coupling graph, choose (or read) the mask, write the cut
/// checkpoint and the mask.
public enum PruneWorkflow {
    /// What both cuts (widths, depth) start from: the declared inputs and outputs, the model opened for
    /// random access, and its config, which pruning needs to know the layers.
    static func openModel(_ s: PruneSettings) throws -> (checkpoint: Checkpoint, configJSON: String, config: UNetConfig) {
        try InputSet.declare(inputs: [(s.model, "MODEL"), (s.mask, "--mask"), (s.data, "--data"), (s.scheduler, "--scheduler")],
                             outputs: [(s.output, "OUT"), (s.emitMask, "--emit-mask")])
        let checkpoint = try openCheckpoint(s.model, s.open, randomAccess: true).withRandomAccess()
        guard let configJSON = checkpoint.configJSON else {
            throw TensorFormatError(.invalidConfig, "no diffusers config (config.json beside the weights or dmsurgery.config metadata)", file: s.model)
        }
        do { return (checkpoint, configJSON, try UNetConfig(json: configJSON)) } catch let error as UNetError { throw located(error, file: s.model) }
    }

    /// `openModel` for a width cut: a UNet, or a PixArt transformer (no UNet config).
    private static func openPrunable(_ s: PruneSettings) throws -> (checkpoint: Checkpoint, configJSON: String, config: UNetConfig?,
                                                                     units: PruningUnits) {
        try InputSet.declare(inputs: [(s.model, "MODEL"), (s.mask, "--mask"), (s.data, "--data"), (s.scheduler, "--scheduler")],
                             outputs: [(s.output, "OUT"), (s.emitMask, "--emit-mask")])
        let checkpoint = try openCheckpoint(s.model, s.open, randomAccess: true).withRandomAccess()
        guard let configJSON = checkpoint.configJSON else {
            throw TensorFormatError(.invalidConfig, "no diffusers config (config.json beside the weights or dmsurgery.config metadata)", file: s.model)
        }
        let shapes = Dictionary(checkpoint.entries.map { ($0.name, $0.shape) }, uniquingKeysWith: { first, _ in first })
        do {
            if PixArtConfig.describes(json: configJSON) {
                let units = try PruningUnits(pixart: try PixArtConfig(json: configJSON), shapes: shapes, file: s.model)
                return (checkpoint, configJSON, nil, units)
            }
            let config = try UNetConfig(json: configJSON)
            return (checkpoint, configJSON, config, try PruningUnits(config: config, shapes: shapes, file: s.model))
        } catch let error as UNetError { throw located(error, file: s.model) }
    }

    public static func run(_ s: PruneSettings) throws {
        try run(s, alongside: [])
    }

    /// `alongside`: text files published with OUT and the mask as one (a depth student's config.json).
    static func run(_ s: PruneSettings, alongside: [(path: String, text: String)]) throws {
        if s.depthKeep != nil || s.depthBlocks != nil { return try PixArtPruneWorkflow.depth(s) }
        if let variant = s.depth {
            var rest = s
            rest.depth = nil
            return try DepthPruneWorkflow.run(rest, variant: variant)
        }
        let start = Date()
        let (checkpoint, configJSON, config, units) = try openPrunable(s)
        // Every output is opened (its path checked) before the scoring, which can take minutes at SDXL
        // size, and before any is written; all are committed together: a bad --emit-mask or a full disk
        // on the mask leaves OUT as it was. An error on the way discards them (OutputFile's deinit).
        let out = try s.output.map { (path) throws(TensorFormatError) in try OutputFile(path: path, force: s.force) }
        // Text: a terminal is a fine place for the mask.
        let maskOut = try s.emitMask.map { (path) throws(TensorFormatError) in try OutputFile(path: path, force: true) }
        let texts = try alongside.map { (file) throws(TensorFormatError) in try OutputFile(path: file.path, force: true) }
        let hash = try Pruner.tensorsSHA256(checkpoint)
        let chosen = try choose(s, units, checkpoint: checkpoint, config: config, hash: hash)
        let kept = try chosen.kept(for: units, file: s.mask ?? s.model)

        let dropped = zip(units.layers, kept).reduce(0) { $0 + ($1.0.units - $1.1.count) }
        let total = units.layers.reduce(0) { $0 + $1.units }
        var written: (tensors: Int, bytes: Int)?
        if let out {
            var metadata = checkpoint.metadata ?? Metadata()
            metadata[MetadataKey.config] = configJSON
            metadata[MetadataKey.mask] = chosen.compactJSON
            let bar = ProgressBar("prune", total: checkpoint.byteCount, quiet: s.quiet)
            defer { bar.finish() }
            let result = try Pruner.write(checkpoint, units: units, kept: kept, metadata: metadata, to: out, progress: bar.update)
            written = (result.tensors, result.bytesWritten)
        }
        try maskOut?.write(Array(chosen.fileJSON.utf8))
        for (file, text) in zip(texts, alongside) { try file.write(Array(text.text.utf8)) }
        try OutputFile.commitTogether([out, maskOut].compactMap { $0 } + texts)
        try checkpoint.finish()
        if let output = s.output, let written {
            let specs = Pruner.outputSpecs(checkpoint, units: units, kept: kept)
            let parameters = specs.reduce(0) { $0 + $1.shape.reduce(1, *) }
            note("wrote \(output): \(formatCount(written.tensors)) tensors, \(formatCount(parameters)) of \(formatCount(checkpoint.parameterCount)) parameters, \(formatBytes(written.bytes))", quiet: s.quiet)
        }
        note("\(chosen.criterion): dropped \(dropped) of \(total) units in \(units.layers.count) layers ("
             + String(format: "%.2f s", Date().timeIntervalSince(start)) + ")", quiet: s.quiet)
    }

    /// The mask: read from --mask, or chosen by the criterion.
    private static func choose(_ s: PruneSettings, _ units: PruningUnits, checkpoint: Checkpoint, config: UNetConfig?,
                               hash: String) throws -> PruningMask {
        if let mask = s.mask {
            let text: String
            if mask == "-" {
                text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            } else {
                text = try MappedFile.text(of: mask, what: "the mask")
            }
            let given = try PruningMask(json: text, file: mask)
            if !given.sourceSHA256.isEmpty && given.sourceSHA256 != hash {
                note("warning: the mask was chosen on other weights (tensors_sha256 \(given.sourceSHA256.prefix(12))…)", quiet: s.quiet)
            }
            return given
        }
        let criterion = s.criterion ?? .l1
        let ratio = s.ratio ?? 0.5
        let importance: ImportanceCriterion
        switch criterion {
        case .l1: importance = MagnitudeImportance(squared: false)
        case .l2: importance = MagnitudeImportance(squared: true)
        case .random: importance = RandomImportance(seed: s.seed)
        case .taylor:
            if let config { importance = try taylor(s, config: config) } else { importance = try PixArtPruneWorkflow.taylor(s) }
        }
        let scores: [[Double]]
        do { scores = try importance.scores(units, checkpoint: checkpoint) } catch let error as UNetError {
            // Bad inputs come from the data file (x0's shape, cond's); everything else is the model's.
            throw located(error, file: error.kind == .badInput ? s.data ?? s.model : s.model)
        }
        let kept = Pruner.choose(units, scores: scores, ratio: ratio, global: s.global) { layer in
            s.only.isEmpty || s.only.contains { globMatches($0, layer.name) }
        }
        return PruningMask(units: units, kept: kept, criterion: importance.name, ratio: ratio, global: s.global,
                           seed: criterion == .l1 || criterion == .l2 ? nil : s.seed, sourceSHA256: hash)
    }

    private static func taylor(_ s: PruneSettings, config: UNetConfig) throws -> TaylorImportance {
        let file = s.data!
        let set = try TrainingData(checkpoint: try openCheckpoint(file, s.open, randomAccess: true), file: file,
                                   role: .data, config: config)
        guard let x0 = set.x0 else { throw TensorFormatError(.missingTensor, "missing", file: file, tensor: "x0") }
        let schedulerConfig = try loadSchedulerConfig(model: s.model, explicit: s.scheduler)
        var importance = TaylorImportance(x0: x0, context: set.cond, schedule: NoiseSchedule(schedulerConfig), seed: s.seed,
                                          steps: s.timesteps ?? schedulerConfig.numTrainTimesteps)
        let quiet = s.quiet
        importance.progress = { step, t, loss in
            if step % 50 == 0 { note("taylor: step \(step), t \(t), loss \(formatNumber(Double(loss)))", quiet: quiet) }
        }
        return importance
    }
}
