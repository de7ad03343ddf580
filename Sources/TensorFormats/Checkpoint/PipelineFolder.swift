import Foundation

/// A diffusers pipeline folder: `model_index.json` naming its components, one folder each.
///
/// `model_index.json` maps a component name to `[library, class]` (`[null, null]` for an absent one);
/// weight-bearing components are model folders (config.json + safetensors, optionally sharded and with
/// a variant infix), the scheduler a `scheduler_config.json`, tokenizers plain files.
public struct PipelineFolder: Sendable {
    public struct Component: Sendable {
        public var name: String
        public var library: String?
        public var className: String?
        /// The component's folder, when it exists.
        public var path: String?
        /// True when the folder holds safetensors weights for the variant asked for.
        public var hasWeights: Bool
    }

    public let path: String
    public let className: String?
    public let components: [Component]
    public let variant: String?

    /// Weight files looked for in a model folder, in order of preference, with diffusers' variant infix
    /// (`diffusion_pytorch_model.fp16.safetensors`, `diffusion_pytorch_model.safetensors.index.fp16.json`).
    public static func weightNames(variant: String?) -> [String] {
        let infix = variant.map { $0.isEmpty ? "" : "." + $0 } ?? ""
        return ["diffusion_pytorch_model", "model"].flatMap { base in
            ["\(base).safetensors.index\(infix).json", "\(base)\(infix).safetensors"]
        }
    }

    /// An ONNX pipeline's component file (diffusers' `OnnxRuntimeModel`, Optimum).
    public static let onnxModelName = "model.onnx"

    /// True when `path` is a folder with a `model_index.json`.
    public static func isPipeline(_ path: String) -> Bool {
        Sys.isDirectory(path) && Sys.exists(join(path, "model_index.json"))
    }

    public init(path: String, variant: String? = nil) throws {
        let indexPath = Self.join(path, "model_index.json")
        guard Sys.exists(indexPath) else {
            throw TensorFormatError(.notFound, "no model_index.json (not a diffusers pipeline folder)", file: path)
        }
        let data = try MappedFile.contents(of: indexPath)
        let parsed: Result<JSONValue, JSONParseError> = data.withUnsafeBytes { raw in
            Result { () throws(JSONParseError) in try JSONParser.parse(raw) }
        }
        guard case .success(let value) = parsed, case .object(let members) = value else {
            throw TensorFormatError(.invalidConfig, "model_index.json is not a JSON object", file: indexPath)
        }
        var components: [Component] = []
        for member in members where !member.key.hasPrefix("_") {
            guard case .array(let pair) = member.value, pair.count == 2 else { continue }
            guard !member.key.contains("/"), !member.key.hasPrefix(".") else {
                throw TensorFormatError(.invalidConfig, "component name is not a folder name", file: indexPath, tensor: member.key)
            }
            let folder = Self.join(path, member.key)
            let exists = Sys.isDirectory(folder)
            let weights = exists && (Self.weightNames(variant: variant).contains { Sys.exists(Self.join(folder, $0)) }
                                     || Sys.exists(Self.join(folder, Self.onnxModelName)))
            components.append(Component(name: member.key, library: pair[0].stringValue, className: pair[1].stringValue,
                                        path: exists ? folder : nil, hasWeights: weights))
        }
        self.path = path
        self.className = value["_class_name"]?.stringValue
        self.components = components
        self.variant = variant
    }

    public func component(_ name: String) -> Component? { components.first { $0.name == name } }

    /// Opens a weight-bearing component (nil when the pipeline lists it absent or its folder has no weights).
    public func open(_ name: String, options: OpenOptions = OpenOptions()) throws -> Checkpoint? {
        guard let component = component(name), let folder = component.path, component.hasWeights else { return nil }
        var options = options
        options.variant = variant
        return try Checkpoint.openFolder(folder, options: options)
    }

    /// The scheduler's config, when the pipeline has one.
    public var schedulerConfigPath: String? {
        let candidate = Self.join(path, "scheduler/scheduler_config.json")
        return Sys.exists(candidate) ? candidate : nil
    }

    /// Refuses a file or folder of the pipeline at `path` that is a symlink to something outside it: a
    /// pipeline copied or re-saved must not pull in files from elsewhere (a secret beside it). Links
    /// into the pipeline are followed, and so are links from a Hugging Face cache snapshot
    /// (`models--ORG--NAME/snapshots/REV/`) into its own `blobs/` folder, which is how that cache
    /// stores every file.
    public func refuseLinkOutside(_ item: String) throws(TensorFormatError) {
        var st = stat()
        guard lstat(item, &st) == 0, st.st_mode & S_IFMT == S_IFLNK else { return }
        guard let root = Sys.realPath(path), let target = Sys.realPath(item) else {
            throw TensorFormatError(.linkOutsideInput, "a symlink that does not resolve", file: item)
        }
        var allowed = [root]
        let snapshots = (root as NSString).deletingLastPathComponent
        if (snapshots as NSString).lastPathComponent == "snapshots" {
            allowed.append((snapshots as NSString).deletingLastPathComponent + "/blobs")
        }
        guard allowed.contains(where: { target.hasPrefix($0 + "/") }) else {
            throw TensorFormatError(.linkOutsideInput, "a symlink to \(target), outside the pipeline \(path); copy the file in or leave it out",
                                    file: item)
        }
    }

    static func join(_ folder: String, _ name: String) -> String {
        (folder.hasSuffix("/") ? folder : folder + "/") + name
    }
}

extension Checkpoint {
    /// A whole pipeline as one checkpoint: every weight-bearing component's tensors, named
    /// `component.tensor` (`unet.conv_in.weight`), so module totals at depth 1 are per-component totals
    /// and `verify` and `diff` cover every component. Commands that need a UNet open the folder with
    /// `open` instead, which takes its `unet/`.
    public static func openPipeline(_ path: String, options: OpenOptions = OpenOptions()) throws -> Checkpoint {
        let pipeline = try PipelineFolder(path: path, variant: options.variant)
        var files: [CheckpointFile] = []
        var routes: [ByteKey: (Checkpoint, TensorEntry)] = [:]
        var entries: [TensorEntry] = []
        var details: [(String, String)] = []
        for component in pipeline.components {
            guard let opened = try pipeline.open(component.name, options: options) else {
                details.append(("component", "\(component.name): \(component.className ?? "absent")\(component.path == nil || component.library == nil ? "" : " (no weights)")"))
                continue
            }
            let offset = files.count
            files += opened.files
            for entry in opened.entries {
                var info = entry.info
                info.name = component.name + "." + info.name
                entries.append(TensorEntry(info: info, fileIndex: entry.fileIndex + offset, fileOffset: entry.fileOffset))
                routes[ByteKey(info.name)] = (opened, entry)
            }
            details.append(("component", "\(component.name): \(component.className ?? "?"), \(opened.entries.count) tensors, \(opened.parameterCount) parameters"))
        }
        guard !entries.isEmpty else {
            throw TensorFormatError(.unknownFormat, "the pipeline has no component with safetensors or ONNX weights\(pipeline.variant.map { " of variant \($0)" } ?? "")", file: path)
        }
        return try Checkpoint(name: path, format: .diffusersPipeline, files: files, entries: entries, metadata: nil, configJSON: nil,
                              details: details, provider: ComponentProvider(routes: routes))
    }
}

/// A pipeline's tensors read through the component checkpoint that holds each (safetensors maps, an
/// ONNX model's dequantizing provider), by the tensor's `component.name`.
final class ComponentProvider: TensorDataProvider {
    private let routes: [ByteKey: (Checkpoint, TensorEntry)]

    init(routes: [ByteKey: (Checkpoint, TensorEntry)]) { self.routes = routes }

    var isSequential: Bool { false }

    private func route(_ entry: TensorEntry) throws(TensorFormatError) -> (Checkpoint, TensorEntry) {
        guard let route = routes[ByteKey(entry.name)] else { throw TensorFormatError(.notFound, "no such tensor in the pipeline", tensor: entry.name) }
        return route
    }

    func read(_ entry: TensorEntry, chunkBytes: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let (component, original) = try route(entry)
        try component.provider.read(original, chunkBytes: chunkBytes, body)
    }

    func read(_ entry: TensorEntry, range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let (component, original) = try route(entry)
        try component.provider.read(original, range: range, body)
    }

    func finish() throws {}
}

extension ErrorCode {
    /// A file of a pipeline being copied is a symlink to something outside it (formats/ldm.md).
    public static let linkOutsideInput = ErrorCode(rawValue: "link-outside-input")
}
