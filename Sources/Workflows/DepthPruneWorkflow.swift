import Foundation
import Surgery
import TensorFormats
import UNet

/// `prune --depth`: cut whole blocks as BK-SDM does, copying the kept ones from the teacher
/// (formats/depth.md), and, when width options are given too, prune the widths of that student.
enum DepthPruneWorkflow {
    static func run(_ s: PruneSettings, variant: DepthVariant) throws {
        let start = Date()
        let (checkpoint, configJSON, config) = try PruneWorkflow.openModel(s)
        let plan = try DepthPlan(variant: variant, configJSON: configJSON, config: config,
                                 names: checkpoint.entries.map(\.name), file: s.model)
        let widthToo = s.ratio != nil || s.criterion != nil || s.mask != nil || s.emitMask != nil
        guard widthToo else {
            guard let output = s.output else { throw TensorFormatError(.invalidArgument, "--depth needs OUT", file: s.model) }
            try write(plan, from: checkpoint, to: output, s)
            try checkpoint.finish()
            note("--depth \(variant.rawValue): \(plan.copies.count) tensors copied, \(plan.dropped.count) dropped ("
                 + String(format: "%.2f s", Date().timeIntervalSince(start)) + ")", quiet: s.quiet)
            return
        }
        // Depth first, then widths: the width pass ranks and slices the student's own layers.
        let temporary = temporaryFolder(beside: s.output ?? s.emitMask ?? "-")
        // Registered, so SIGINT or SIGTERM during the width pass removes the student-sized folder too.
        TemporaryFiles.registerFolder(temporary)
        defer { TemporaryFiles.removeFolder(temporary) }
        try write(plan, from: checkpoint, to: temporary + "/", s)
        try checkpoint.finish()
        var width = s
        width.model = temporary
        let folder = s.output.map(isFolder) ?? false
        var alongside: [(path: String, text: String)] = []
        if let output = s.output, folder {
            try OutputFile.createFolder(output)
            width.output = weightsPath(output)
            alongside.append((configPath(output), plan.configJSON + "\n"))
        }
        try PruneWorkflow.run(width, alongside: alongside)
    }

    /// The student as a diffusers folder, or one `.safetensors` file / stream that carries its config
    /// as dmsurgery.config.
    static func write(_ plan: some CopyPlan, from checkpoint: Checkpoint, to output: String, _ s: PruneSettings) throws {
        var metadata = checkpoint.metadata ?? Metadata()
        // A width mask of the teacher does not fit the student; the config travels beside it or inside.
        metadata[MetadataKey.mask] = nil
        metadata[MetadataKey.config] = nil
        metadata[MetadataKey.depth] = plan.mapJSON
        let folder = isFolder(output)
        if !folder { metadata[MetadataKey.config] = plan.configJSON }
        if folder { try OutputFile.createFolder(output) }
        let bar = ProgressBar("prune", total: checkpoint.byteCount, quiet: s.quiet)
        defer { bar.finish() }
        let out = try OutputFile(path: folder ? weightsPath(output) : output, force: s.force)
        // The config is opened before the weights are written and both are renamed together, so a
        // signal or an error never leaves new weights beside an old config.json.
        let config = folder ? try OutputFile(path: configPath(output), force: true) : nil
        try plan.write(checkpoint, metadata: metadata, to: out, progress: bar.update)
        try config?.write(Array((plan.configJSON + "\n").utf8))
        try OutputFile.commitTogether([out] + (config.map { [$0] } ?? []))
    }

    /// A student is a diffusers folder unless OUT is `-` or a `.safetensors` file that is not a folder.
    static func isFolder(_ path: String) -> Bool {
        path != "-" && (path.hasSuffix("/") || isDirectory(path) || !path.lowercased().hasSuffix(".safetensors"))
    }

    private static func weightsPath(_ folder: String) -> String {
        (folder.hasSuffix("/") ? folder : folder + "/") + "diffusion_pytorch_model.safetensors"
    }

    private static func configPath(_ folder: String) -> String {
        (folder.hasSuffix("/") ? folder : folder + "/") + "config.json"
    }

    /// A folder on OUT's file system (the student may be as large as the teacher), removed afterwards.
    private static func temporaryFolder(beside output: String) -> String {
        let parent = output == "-" ? FileManager.default.temporaryDirectory.path
            : ((output.hasSuffix("/") ? String(output.dropLast()) : output) as NSString).deletingLastPathComponent
        return (parent.isEmpty ? "." : parent) + "/.dmsurgery-depth-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }
}
