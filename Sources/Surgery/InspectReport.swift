import TensorFormats

/// Everything `inspect` reports, from headers alone.
public struct InspectReport {
    public var checkpoint: Checkpoint
    public var architecture: Architecture?
    public var modules: [ModuleTree.Node]
    /// Per-block cost and kept widths, for a UNet whose config this engine reads.
    public var unet: UNetCost?
    /// The same for a PixArt transformer (heads and FFN width per block).
    public var pixart: PixArtCost?

    public init(_ checkpoint: Checkpoint, moduleDepth: Int) {
        self.checkpoint = checkpoint
        architecture = Architecture.recognise(checkpoint)
        modules = ModuleTree.nodes(checkpoint.entries, maxDepth: moduleDepth)
        unet = UNetCost(checkpoint)
        pixart = PixArtCost(checkpoint)
    }

    /// Tensor count per dtype, in the reference enum order.
    public var dtypeCounts: [(DType, Int)] {
        DType.allCases.compactMap { dtype in
            let n = checkpoint.entries.filter { $0.dtype == dtype }.count
            return n > 0 ? (dtype, n) : nil
        }
    }

    /// The documented `--json` object (formats/cli-json.md): keys and their order are stable.
    public var json: JSONValue {
        let tensors: [JSONValue] = checkpoint.entries.map { entry in
            .object([
                JSONMember("name", .string(entry.name)),
                JSONMember("dtype", .string(entry.dtype.rawValue)),
                JSONMember("shape", .ints(entry.shape)),
                JSONMember("bytes", .int(entry.byteCount)),
                JSONMember("data_offsets", .ints([entry.info.dataOffsets.lowerBound, entry.info.dataOffsets.upperBound])),
                JSONMember("file", .int(entry.fileIndex)),
            ])
        }
        let files: [JSONValue] = checkpoint.files.map { file in
            .object([
                JSONMember("path", .string(file.path)),
                JSONMember("size", file.size.map { .int($0) } ?? .null),
                JSONMember("header_length", .int(file.header.headerLength)),
            ])
        }
        let architectureJSON: JSONValue = architecture.map { arch in
            .object([
                JSONMember("name", .string(arch.name)),
                JSONMember("evidence", .string(arch.evidence)),
                JSONMember("config", .object(arch.details.map { key, value in
                    JSONMember(key, (try? JSONParser.parse(value)) ?? .string(value))
                })),
            ])
        } ?? .null
        return .object([
            JSONMember("name", .string(checkpoint.name)),
            JSONMember("format", .string(checkpoint.format.rawValue)),
            JSONMember("files", .array(files)),
            JSONMember("details", .object(checkpoint.details.map { JSONMember($0.0, .string($0.1)) })),
            JSONMember("metadata", checkpoint.metadata?.json ?? .object([])),
            JSONMember("architecture", architectureJSON),
            JSONMember("parameters", .int(checkpoint.parameterCount)),
            JSONMember("bytes", .int(checkpoint.byteCount)),
            JSONMember("dtypes", .object(dtypeCounts.map { JSONMember($0.0.rawValue, .int($0.1)) })),
            JSONMember("tensors", .array(tensors)),
            JSONMember("modules", .array(modules.map { node in
                .object([
                    JSONMember("path", .string(node.path)),
                    JSONMember("parameters", .int(node.parameters)),
                    JSONMember("tensors", .int(node.tensors)),
                ])
            })),
            JSONMember("unet", unet?.json ?? .null),
            JSONMember("pixart", pixart?.json ?? .null),
        ])
    }
}
