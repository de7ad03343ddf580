import Foundation
import Surgery
import TensorFormats

/// `convert PIPELINE OUT_FOLDER`: a whole diffusers pipeline re-saved (formats/ldm.md, "Pipeline
/// folders"). Every weight-bearing component is converted (--dtype) and written with the output variant's
/// file name (`diffusion_pytorch_model.fp16.safetensors`, `model.fp16.safetensors`); its config.json
/// and other files are copied, as are model_index.json and the folders without weights (scheduler/,
/// tokenizer/). Every file goes through `OutputFile` and all are committed together at the end, so an
/// error leaves no half pipeline.
extension ConvertWorkflow {
    /// File suffixes of weights in a component folder: never copied (the converted file replaces them).
    static let weightSuffixes = [".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".h5", ".onnx", ".gguf", ".zst"]

    /// True when a conversion is of a whole pipeline: a pipeline folder in, safetensors out to a folder
    /// (not a stream, not a `.safetensors` or `.zst` file).
    public static func isPipelineConversion(input: String, output: String, format: OutputFormat) -> Bool {
        guard format == .safetensors, output != "-", PipelineFolder.isPipeline(input) else { return false }
        let lower = output.lowercased()
        return !lower.hasSuffix(".safetensors") && !lower.hasSuffix(".zst")
    }

    static func convertPipeline(_ settings: ConvertSettings) throws -> ConvertOutcome {
        let selection = settings.selection
        guard selection.only.isEmpty, selection.exclude.isEmpty, selection.renames.isEmpty, settings.shardBytes == nil, settings.compression == nil else {
            throw TensorFormatError(.invalidArgument, "a whole pipeline is converted with --dtype and --variant only (no --only, --exclude, --rename, --shard-size or --compress)",
                                    file: settings.input)
        }
        try refuseInside(settings.output, input: settings.input)
        let outputVariant = settings.open.variant
        // The input's files of the variant asked for when it has them, else its plain files.
        var pipeline = try PipelineFolder(path: settings.input, variant: outputVariant)
        if outputVariant != nil, !pipeline.components.contains(where: \.hasWeights) {
            pipeline = try PipelineFolder(path: settings.input, variant: nil)
        }
        guard pipeline.components.contains(where: \.hasWeights) else {
            throw TensorFormatError(.unknownFormat, "the pipeline has no component with safetensors weights", file: settings.input)
        }
        try OutputFile.createFolder(settings.output)
        var pending: [OutputFile] = []
        var result = ConvertResult()
        var casts = 0
        func copy(_ from: String, to path: String) throws {
            try pipeline.refuseLinkOutside(from)
            let data = try MappedFile.contents(of: from)
            let out = try OutputFile(path: path)
            try out.write(data)
            pending.append(out)
            result.files.append(path)
        }
        try copy(join(settings.input, "model_index.json"), to: join(settings.output, "model_index.json"))
        for component in pipeline.components {
            guard let folder = component.path else { continue }
            let target = join(settings.output, component.name)
            try makeFolder(target)
            var weightsBase: String?
            if component.hasWeights, let checkpoint = try pipeline.open(component.name, options: OpenOptions(randomAccess: true)) {
                let plan = try ConvertPlan(checkpoint: checkpoint, dtype: settings.dtype, selection: settings.selection)
                let base = PipelineFolder.weightNames(variant: pipeline.variant).first { Files.exists(join(folder, $0)) }
                    .map { $0.hasPrefix("diffusion_pytorch_model") ? "diffusion_pytorch_model" : "model" } ?? "model"
                weightsBase = base
                let path = join(target, LDMConversion.weightsName(base, variant: outputVariant))
                let bar = ProgressBar("convert \(component.name)", total: plan.tensors.reduce(0) { $0 + $1.source.byteCount }, quiet: settings.quiet)
                let out = try OutputFile(path: path)
                try Converter.writeSafetensors(plan, metadata: plan.metadata(embedConfig: false), to: out, progress: bar.update, result: &result)
                bar.finish()
                try checkpoint.finish()
                pending.append(out)
                result.files.append(path)
                casts += plan.tensors.filter { $0.dtype != $0.source.dtype }.count
            }
            try pipeline.refuseLinkOutside(folder)
            try copyFiles(of: folder, to: target, skippingWeights: weightsBase != nil, pipeline: pipeline, copy: copy)
        }
        try OutputFile.commitTogether(pending)
        return ConvertOutcome(result: result, casts: casts)
    }

    /// Copies a component folder's regular files (and sub-folders, as a tokenizer may have), leaving out
    /// weight files when the component's weights were converted.
    static func copyFiles(of folder: String, to target: String, skippingWeights: Bool, depth: Int = 0,
                          pipeline: PipelineFolder, copy: (String, String) throws -> Void) throws {
        guard depth < 4 else {
            throw TensorFormatError(.unsupported, "component folders nested more than 4 levels deep are not copied", file: folder)
        }
        for name in try Files.list(folder) where !name.hasPrefix(".") {
            let path = join(folder, name)
            if isDirectory(path) {
                try pipeline.refuseLinkOutside(path)
                try makeFolder(join(target, name))
                try copyFiles(of: path, to: join(target, name), skippingWeights: skippingWeights, depth: depth + 1, pipeline: pipeline, copy: copy)
                continue
            }
            let lower = name.lowercased()
            if skippingWeights && (weightSuffixes.contains { lower.hasSuffix($0) } || (lower.contains(".index") && lower.hasSuffix(".json"))) {
                continue
            }
            try copy(path, join(target, name))
        }
    }

    /// Refuses an output folder inside the input pipeline (also one not yet created, whose nearest
    /// existing ancestor is inside it), before any folder is made.
    static func refuseInside(_ output: String, input: String) throws {
        guard let inputPath = Files.realPath(input) else { return }
        var existing = URL(fileURLWithPath: output).standardizedFileURL
        var rest: [String] = []
        while !Files.exists(existing.path), existing.path != "/" {
            rest.insert(existing.lastPathComponent, at: 0)
            existing.deleteLastPathComponent()
        }
        guard let real = Files.realPath(existing.path) else { return }
        let resolved = ([real] + rest).joined(separator: "/")
        if resolved == inputPath || resolved.hasPrefix(inputPath.hasSuffix("/") ? inputPath : inputPath + "/") {
            throw TensorFormatError(.sameFile, "OUT is inside the input INPUT (\(input)); choose another path", file: output)
        }
    }

    static func makeFolder(_ path: String) throws {
        try OutputFile.createFolder(path)
    }

    static func join(_ folder: String, _ name: String) -> String {
        (folder.hasSuffix("/") ? folder : folder + "/") + name
    }
}
