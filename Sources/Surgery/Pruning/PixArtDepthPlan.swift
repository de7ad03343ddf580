import TensorFormats
import UNet

/// Depth pruning of a PixArt transformer (TinyFusion / Flux-mini style, formats/pixart.md): the student
/// keeps teacher blocks `kept` (ascending), renumbered 0..<n, so student block i is teacher block
/// kept[i] (the pairing feature distillation aligns); every tensor outside `transformer_blocks` keeps
/// its name; the config is the teacher's with `num_layers` = n. Tensors are copied byte for byte, so the
/// student loads in stock diffusers with no missing or unexpected keys.
public struct PixArtDepthPlan: Sendable, CopyPlan {
    /// The teacher block each student block copies.
    public var kept: [Int]
    public var configJSON: String
    public var copies: [(student: String, teacher: String)]
    public var dropped: [String]

    /// n blocks spread evenly over `layers`, first and last included: round(i (layers - 1) / (n - 1)).
    public static func evenlySpaced(_ n: Int, of layers: Int) -> [Int] {
        guard n > 1 else { return [0] }
        return (0..<n).map { i in Int((Double(i * (layers - 1)) / Double(n - 1)).rounded()) }
    }

    public init(configJSON: String, config: PixArtConfig, names: [String], kept: [Int], file: String) throws {
        func refuse(_ message: String) -> SurgeryError { SurgeryError(.depthUnsupported, message, file: file) }
        guard !kept.isEmpty else { throw refuse("the student must keep at least one block") }
        if let bad = kept.first(where: { !(0..<config.numLayers).contains($0) }) {
            throw refuse("block \(bad) does not exist (the teacher has blocks 0...\(config.numLayers - 1))")
        }
        guard zip(kept, kept.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw refuse("the kept blocks \(kept) must be distinct and ascending")
        }
        self.kept = kept
        guard case .object(var members)? = try? JSONParser.parse(configJSON) else { throw refuse("config.json is not a JSON object") }
        if let i = members.firstIndex(where: { $0.key == "num_layers" }) {
            members[i].value = .int(kept.count)
        } else {
            members.append(JSONMember("num_layers", .int(kept.count)))
        }
        self.configJSON = JSONWriter.python(.object(members))
        let position = Dictionary(uniqueKeysWithValues: kept.enumerated().map { ($1, $0) })
        var copies: [(String, String)] = []
        var dropped: [String] = []
        for name in names {
            let parts = name.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == "transformer_blocks", let block = Int(parts[1]) else {
                copies.append((name, name))
                continue
            }
            if let student = position[block] {
                copies.append(("transformer_blocks.\(student).\(parts[2])", name))
            } else {
                dropped.append(name)
            }
        }
        self.copies = copies
        self.dropped = dropped
    }

    /// `{"kept": [...], "copies": {student: teacher, ...}}`, the `dmsurgery.depth` metadata value.
    public var mapJSON: String {
        JSONWriter.compact(.object([
            JSONMember("kept", .ints(kept)),
            JSONMember("copies", .object(copies.map { JSONMember($0.student, .string($0.teacher)) })),
        ]))
    }
}
