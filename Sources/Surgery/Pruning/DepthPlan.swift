import TensorFormats
import UNet

/// BK-SDM's three depth-pruned variants (Kim et al., arXiv 2305.15798) and KOALA's two SDXL students
/// (Lee et al., arXiv 2312.04005), each a stock diffusers config.
public enum DepthVariant: String, Sendable, CaseIterable {
    /// One ResNet(+attention) pair fewer in every down stage and the matching pair in every up stage.
    case base
    /// `base` without the mid block (`mid_block_type: null`).
    case small
    /// `small` without the innermost stage pair (the last down block and the first up block).
    case tiny
    /// KOALA-1B: `base`'s ResNet(+attention) pairs, and the transformers of the deepest stage (SDXL's
    /// 10-block ones: down, mid and up) keep their first 6 blocks.
    case koala1B = "koala-1b"
    /// KOALA-700M: KOALA-1B without the mid block, the deepest stage's transformers keeping 5 blocks.
    case koala700M = "koala-700m"

    var dropsMidBlock: Bool { self == .small || self == .tiny || self == .koala700M }
    var dropsInnermostStage: Bool { self == .tiny }
    /// How many transformer blocks each transformer of the deepest stage keeps (its first ones); nil
    /// when the variant leaves transformer depths alone. 6 and 5 are the depths whose students have
    /// exactly KOALA's parameter counts on SDXL's UNet (1,161.2M and 782.8M, formats/depth.md).
    var keptDeepestTransformerBlocks: Int? {
        switch self {
        case .koala1B: 6
        case .koala700M: 5
        default: nil
        }
    }
}

extension ErrorCode {
    /// A depth variant this teacher cannot be cut to (formats/depth.md).
    public static let depthUnsupported = ErrorCode(rawValue: "depth-unsupported")
}

/// The student of a depth cut: its config.json and, for every student tensor, the teacher tensor it
/// copies byte for byte (BK-SDM's `copy_weight_from_teacher`, generalised to any block count and depth).
///
/// Rules, per teacher block with L ResNet layers (up blocks hold L+1): the student keeps max(1, L-1).
/// Down blocks keep their first layers; up blocks keep their first layers and their last one, because
/// the last up layer is the one whose skip input is the previous stage's output (its conv1 is wider),
/// exactly as BK-SDM copies `up_blocks.i.resnets.2` into `resnets.1`. `tiny` drops the last down block
/// and up block 0, so student up block i copies teacher up block i+1 and the new last down block has no
/// downsampler. Everything else (time embedding, conv_in, conv_out, norms) keeps its name.
public struct DepthPlan: Sendable {
    public var variant: DepthVariant
    /// The student's config.json (the teacher's with the changed keys replaced, member order kept).
    public var configJSON: String
    public var config: UNetConfig
    /// (student tensor, teacher tensor) in the teacher's storage order.
    public var copies: [(student: String, teacher: String)]
    /// Teacher tensors the student has no place for.
    public var dropped: [String]

    /// Plans the cut of a teacher with `configJSON` / `config` whose tensors are `names`.
    public init(variant: DepthVariant, configJSON: String, config: UNetConfig, names: [String], file: String) throws {
        self.variant = variant
        let n = config.blockOutChannels.count
        func refuse(_ message: String) -> SurgeryError {
            SurgeryError(.depthUnsupported, "--depth \(variant.rawValue): " + message, file: file)
        }
        if variant.dropsInnermostStage {
            guard n >= 2 else { throw refuse("a UNet with one stage has no innermost stage pair to drop") }
            // Student up block 0 then reads the output of down block n-2 where the teacher's read up block 0's.
            guard config.blockOutChannels[n - 1] == config.blockOutChannels[n - 2] else {
                throw refuse("the two innermost stages must have the same width to drop one (block_out_channels \(config.blockOutChannels))")
            }
        }
        // KOALA's cut of the deepest stage: the down transformers (and the mid block's, which diffusers
        // builds at the last down depth) and up block 0's keep their first `kept` blocks.
        var deepestCut: DeepestCut?
        if let kept = variant.keptDeepestTransformerBlocks {
            guard config.family == .conditional, n >= 1, config.downBlockTypes[n - 1] == .crossAttnDown else {
                throw refuse("KOALA cuts the transformers of the deepest stage, and this UNet's deepest down block has none")
            }
            let down = config.transformerLayersPerBlock[n - 1]
            guard down > kept else {
                throw refuse("the deepest stage's transformers have \(down) blocks; KOALA keeps \(kept) of SDXL's 10, so there must be more than \(kept)")
            }
            deepestCut = DeepestCut(stage: n - 1, kept: kept, upDepth: min(config.upTransformerLayers(0), kept))
        }
        let keptBlocks = variant.dropsInnermostStage ? n - 1 : n
        let teacherLayers = config.layersPerBlock
        let studentLayers = teacherLayers.map { max(1, $0 - 1) }
        let keptLayers = Array(studentLayers.prefix(keptBlocks))
        if config.family == .unconditional && Set(keptLayers).count > 1 {
            throw refuse("UNet2DModel takes one layers_per_block for every block, and these blocks would keep \(keptLayers)")
        }

        guard case .object(var members)? = try? JSONParser.parse(configJSON) else {
            throw refuse("config.json is not a JSON object")
        }
        func set(_ key: String, _ value: JSONValue) {
            if let i = members.firstIndex(where: { $0.key == key }) { members[i].value = value } else { members.append(JSONMember(key, value)) }
        }
        set("layers_per_block", Set(keptLayers).count == 1 ? .int(keptLayers[0]) : .ints(keptLayers))
        if variant.dropsMidBlock { set("mid_block_type", .null) }
        if variant.dropsInnermostStage {
            // Written out even when the teacher left them to diffusers' defaults (which have n entries).
            set("block_out_channels", .ints(Array(config.blockOutChannels.dropLast())))
            set("down_block_types", .strings(config.downBlockTypes.dropLast().map(\.rawValue)))
            set("up_block_types", .strings(config.upBlockTypes.dropFirst().map(\.rawValue)))
            for i in members.indices where ["attention_head_dim", "num_attention_heads", "transformer_layers_per_block"].contains(members[i].key) {
                if case .array(let list) = members[i].value, list.count == n { members[i].value = .array(Array(list.dropLast())) }
            }
        }
        if let cut = deepestCut {
            var depths = config.transformerLayersPerBlock
            depths[cut.stage] = cut.kept
            set("transformer_layers_per_block", .ints(depths))
            if config.reverseTransformerLayersPerBlock != nil {
                var up = (0..<n).map { config.upTransformerLayers($0) }
                up[0] = cut.upDepth
                set("reverse_transformer_layers_per_block", .ints(up))
            }
        }
        self.configJSON = JSONWriter.python(.object(members))
        do { self.config = try UNetConfig(json: self.configJSON) } catch let error as UNetError {
            throw refuse("the student's config is refused: \(error.message)")
        }

        var copies: [(String, String)] = []
        var dropped: [String] = []
        for name in names {
            if let s = Self.studentName(name, variant: variant, blocks: n, teacherLayers: teacherLayers, studentLayers: studentLayers),
               deepestCut?.keeps(s) ?? true {
                copies.append((s, name))
            } else {
                dropped.append(name)
            }
        }
        self.copies = copies
        self.dropped = dropped
    }

    /// KOALA's transformer cut in the deepest stage. It renames nothing: the kept blocks are each
    /// transformer's first ones, so a student name either exists in the teacher or is dropped.
    struct DeepestCut {
        var stage: Int
        var kept: Int
        /// Up block 0's kept depth (its teacher depth when that is already no deeper).
        var upDepth: Int

        /// Whether `name` (a student name) survives the cut: a `transformer_blocks.k` of the deepest
        /// down block, the mid block or up block 0 survives when k is below the kept depth.
        func keeps(_ name: String) -> Bool {
            let parts = name.split(separator: ".", omittingEmptySubsequences: false)
            let limit: Int
            if parts.count > 5, parts[0] == "down_blocks", parts[1] == Substring(String(stage)), parts[2] == "attentions",
               parts[4] == "transformer_blocks" {
                limit = kept
            } else if parts.count > 5, parts[0] == "up_blocks", parts[1] == "0", parts[2] == "attentions", parts[4] == "transformer_blocks" {
                limit = upDepth
            } else if parts.count > 4, parts[0] == "mid_block", parts[1] == "attentions", parts[3] == "transformer_blocks" {
                limit = kept
            } else {
                return true
            }
            let block = parts[0] == "mid_block" ? parts[4] : parts[5]
            guard let k = Int(block) else { return true }
            return k < limit
        }
    }

    /// The student tensor a teacher tensor becomes, nil when the student has no place for it. Names this
    /// rule does not know (not a block layer) keep their name; the engine refuses them later if unused.
    static func studentName(_ name: String, variant: DepthVariant, blocks n: Int, teacherLayers: [Int],
                            studentLayers: [Int]) -> String? {
        var parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let keptBlocks = variant.dropsInnermostStage ? n - 1 : n
        switch parts[0] {
        case "mid_block":
            return variant.dropsMidBlock ? nil : name
        case "down_blocks":
            guard parts.count > 3, let i = Int(parts[1]), (0..<n).contains(i) else { return name }
            guard i < keptBlocks else { return nil }
            switch parts[2] {
            case "resnets", "attentions":
                guard let j = Int(parts[3]) else { return name }
                return j < studentLayers[i] ? name : nil
            case "downsamplers":
                return i < keptBlocks - 1 ? name : nil
            default:
                return name
            }
        case "up_blocks":
            guard parts.count > 3, let i = Int(parts[1]), (0..<n).contains(i) else { return name }
            let shift = variant.dropsInnermostStage ? 1 : 0
            guard i >= shift else { return nil }
            parts[1] = String(i - shift)
            let block = n - 1 - i
            switch parts[2] {
            case "resnets", "attentions":
                guard let j = Int(parts[3]) else { return name }
                let count = teacherLayers[block] + 1, kept = studentLayers[block] + 1
                if j == count - 1 {
                    parts[3] = String(kept - 1)
                } else if j >= kept - 1 {
                    return nil
                }
            case "upsamplers":
                if i - shift >= keptBlocks - 1 { return nil }
            default:
                break
            }
            return parts.joined(separator: ".")
        default:
            return name
        }
    }

    /// `{"variant": ..., "copies": {student: teacher, ...}}`, the `dmsurgery.depth` metadata value.
    public var mapJSON: String {
        JSONWriter.compact(.object([
            JSONMember("variant", .string(variant.rawValue)),
            JSONMember("copies", .object(copies.map { JSONMember($0.student, .string($0.teacher)) })),
        ]))
    }
}

extension MetadataKey {
    /// The depth variant and copy map a student was cut with, as compact JSON (formats/depth.md).
    public static let depth = "dmsurgery.depth"
}
