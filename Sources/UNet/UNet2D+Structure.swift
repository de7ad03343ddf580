import TensorFormats

/// The engine's own description of a UNet's layers (names, widths read from the tensor shapes, strides,
/// heads, norms), without any weight: what writers of other formats (ONNX, later Core ML) build their
/// graphs from. It comes out of the same construction code and checks as a runnable `UNet2D`, so a
/// width-pruned or depth-pruned student, or any checkpoint the engine runs, is described exactly as the
/// engine would compute it, and one the engine refuses is refused here with the same error.
public struct UNetStructure: Sendable {
    public let config: UNetConfig
    public let timeLinear1: LinearLayer
    public let timeLinear2: LinearLayer
    /// `add_embedding.linear_1` and `linear_2` (text_time conditioning only).
    public let addLinear1: LinearLayer?
    public let addLinear2: LinearLayer?
    public let convIn: ConvLayer
    public let down: [DownBlock]
    public let mid: MidBlock?
    public let up: [UpBlock]
    public let normOut: GroupNormLayer
    public let convOut: ConvLayer

    /// The structure of `config` over tensors of these shapes (diffusers names): every tensor must be
    /// used and fit, as when the model itself is built.
    public init(config: UNetConfig, shapes: [String: [Int]]) throws {
        let model = try UNet2D(config: config, table: ParameterTable(shapes: shapes))
        self.config = config
        timeLinear1 = model.timeLinear1
        timeLinear2 = model.timeLinear2
        addLinear1 = model.addLinear1
        addLinear2 = model.addLinear2
        convIn = model.convIn
        down = model.down
        mid = model.mid
        up = model.up
        normOut = model.normOut
        convOut = model.convOut
    }

    /// The structure of an opened checkpoint's UNet: its config (config.json or `dmsurgery.config`) and
    /// its tensor shapes; no tensor is read.
    public init(checkpoint: Checkpoint) throws {
        guard let json = checkpoint.configJSON else {
            throw UNetError(.invalidConfig, checkpoint.name,
                            "no diffusers config (config.json beside the weights or `dmsurgery.config` metadata)")
        }
        var shapes: [String: [Int]] = [:]
        for entry in checkpoint.entries { shapes[entry.name] = entry.shape }
        try self.init(config: try UNetConfig(json: json), shapes: shapes)
    }
}

extension ConvLayer {
    /// The side of the square kernel.
    public var kernel: Int { Int(Double(kernelArea).squareRoot().rounded()) }
}
