/// One prompt of the world: a colour, a shape and a style, spelled "red circle, stripes style".
public struct WorldPrompt: Hashable, Sendable {
    public var colour: WorldColour
    public var shape: WorldShape
    public var style: WorldStyle

    public init(colour: WorldColour, shape: WorldShape, style: WorldStyle) {
        self.colour = colour
        self.shape = shape
        self.style = style
    }

    public var text: String { "\(colour.rawValue) \(shape.rawValue), \(style.rawValue) style" }

    public var tokens: [String] { [Vocabulary.start, colour.rawValue, shape.rawValue, style.rawValue] }

    /// [S * D] values for the `cond` tensors.
    public var embedding: [Float] { Vocabulary.embed(tokens) }

    public var isForget: Bool { style == WorldStyle.forget }

    /// The same prompt in the anchor style: the target of concept ablation.
    public var anchored: WorldPrompt { WorldPrompt(colour: colour, shape: shape, style: isForget ? WorldStyle.anchor : style) }

    /// Every prompt of the original world (the base shapes), in a fixed order (colour, then shape, then
    /// style), so indices are stable across runs.
    public static let all: [WorldPrompt] = WorldColour.allCases.flatMap { colour in
        WorldShape.base.flatMap { shape in
            WorldStyle.allCases.map { WorldPrompt(colour: colour, shape: shape, style: $0) }
        }
    }

    /// The object worlds' prompts: `all`, then the object's 12 (colour, then style).
    public static let extended: [WorldPrompt] = all + WorldColour.allCases.flatMap { colour in
        WorldStyle.allCases.map { WorldPrompt(colour: colour, shape: WorldShape.object, style: $0) }
    }

    public static var retain: [WorldPrompt] { all.filter { !$0.isForget } }
    public static var forget: [WorldPrompt] { all.filter(\.isForget) }

    /// Position in `extended` (and so in `all` for the base shapes): the prompt part of each item's
    /// random stream.
    public var index: Int {
        let styles = WorldStyle.allCases.count
        let c = WorldColour.allCases.firstIndex(of: colour)!, s = WorldStyle.allCases.firstIndex(of: style)!
        guard let b = WorldShape.base.firstIndex(of: shape) else { return WorldPrompt.all.count + c * styles + s }
        return (c * WorldShape.base.count + b) * styles + s
    }
}
