import ArgumentParser
import Surgery
import Workflows

extension PruneCriterion: ExpressibleByArgument {}
extension DepthVariant: ExpressibleByArgument {}

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Structured pruning of a diffusers UNet: drop GroupNorm groups, attention heads and GEGLU width, or whole blocks.",
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

        --depth base|small|tiny removes whole blocks as BK-SDM does (base: one ResNet+attention pair per \
        down stage and the matching up-stage pair; small: also the mid block; tiny: also the innermost \
        stage pair); --depth koala-1b|koala-700m cuts an SDXL UNet as KOALA does (base's pairs, the \
        deepest stage's transformers keep their first 6 or 5 blocks, 700m also drops the mid block). It \
        copies the kept ones from the teacher by the map of formats/depth.md. OUT is then a \
        diffusers folder (config.json + diffusion_pytorch_model.safetensors) that diffusers' from_pretrained \
        loads as is, unless it is - or ends in .safetensors; the copy map travels as dmsurgery.depth. Width options \
        (--ratio, --criterion, --mask, --emit-mask) then prune the widths of that student.

        Exit status: 0 success, 2 invalid or unreadable input (a mask that does not fit the model names \
        the layer), 64 usage error.

        PixArt transformers (PixArtTransformer2DModel): --depth-keep N keeps N blocks spread evenly, \
        first and last included; --depth-blocks 0,3,5 keeps those; OUT is a diffusers folder that \
        from_pretrained loads, the copy map in dmsurgery.depth (formats/pixart.md).
        """
    )

    @Argument(help: "Model: a diffusers folder, a checkpoint with dmsurgery.config metadata, or -.")
    var model: String

    @Argument(help: "Output safetensors file, - for standard output, or (--depth) a diffusers folder.")
    var output: String?

    @Option(help: ArgumentHelp("Fraction of each layer's units to drop, in [0, 1) (default 0.5).", valueName: "r"))
    var ratio: Double?

    @Option(help: "Remove whole blocks as BK-SDM's or KOALA's variant does (formats/depth.md).")
    var depth: DepthVariant?

    @Option(name: .customLong("depth-keep"), help: ArgumentHelp("PixArt transformer: keep N blocks spread evenly, first and last included (formats/pixart.md).", valueName: "n"))
    var depthKeep: Int?

    @Option(name: .customLong("depth-blocks"), help: ArgumentHelp("PixArt transformer: keep these blocks, e.g. 0,3,5 (formats/pixart.md).", valueName: "list"))
    var depthBlocks: String?

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
        if depthKeep != nil && depthBlocks != nil { throw ValidationError("give --depth-keep or --depth-blocks, not both") }
        if let depthKeep, depthKeep < 1 { throw ValidationError("--depth-keep must be at least 1") }
        if let depthBlocks, parsedBlocks(depthBlocks) == nil {
            throw ValidationError("--depth-blocks takes block numbers separated by commas, e.g. 0,3,5 (got \(depthBlocks))")
        }
    }

    /// "0,3,5" as [0, 3, 5]; nil unless every item is a non-negative integer below 10^6.
    private func parsedBlocks(_ text: String) -> [Int]? {
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.filter { $0 != " " }) }
        guard !items.isEmpty, items.allSatisfy({ $0.map { (0..<1_000_000).contains($0) } ?? false }) else { return nil }
        return items.compactMap { $0 }
    }

    func run() throws {
        var settings = PruneSettings(model: model)
        settings.output = output
        settings.emitMask = emitMask
        settings.ratio = ratio
        settings.depth = depth
        settings.depthKeep = depthKeep
        settings.depthBlocks = depthBlocks.flatMap(parsedBlocks)
        settings.criterion = criterion
        settings.seed = seed
        settings.global = global
        settings.only = only
        settings.mask = mask
        settings.data = data
        settings.timesteps = timesteps
        settings.scheduler = scheduler
        settings.open = input.open
        settings.force = binary.force
        settings.quiet = common.quiet
        try PruneWorkflow.run(settings)
    }
}
