/// Draws ground-truth images of the world.
///
/// Only integer geometry and exactly representable float constants are used (no transcendental
/// functions, no accumulated float sums), so a seed gives the same bytes on every IEEE machine: the
/// golden digest test depends on it.
public enum Renderer {
    /// Random variation of one render, drawn from its stream.
    public struct Jitter: Equatable, Sendable {
        /// Side of the shape's bounding box, 9 or 10 px: the sizes at which the period-4 stripes and
        /// checker paint all four corners of the box, so a textured square still reads as a square.
        public var size: Int
        /// Top-left corner of the bounding box.
        public var x0: Int
        public var y0: Int
        /// Background grey level in twentieths (-12...-8: -0.6...-0.4) and per-channel tint (-1...1).
        public var grey: Int
        public var tint: [Int]
        /// Shade of the colour: the lit channel is 0.9 - shade/20, the others -0.8 + dark/20.
        public var shade: Int
        public var dark: [Int]

        public init(_ rng: inout WorldRandom) {
            size = rng.int(in: 9...10)
            let centred = (WorldSize.side - size) / 2
            x0 = rng.int(in: max(1, centred - 2)...min(WorldSize.side - 1 - size, centred + 2))
            y0 = rng.int(in: max(1, centred - 2)...min(WorldSize.side - 1 - size, centred + 2))
            grey = rng.int(in: -12 ... -8)
            tint = (0..<3).map { _ in rng.int(in: -1...1) }
            shade = rng.int(in: 0...4)
            dark = (0..<3).map { _ in rng.int(in: 0...4) }
        }
    }

    /// Whether pixel (x, y) lies inside the shape's silhouette.
    static func inside(_ shape: WorldShape, x: Int, y: Int, jitter j: Jitter) -> Bool {
        let (u, v, s) = (x - j.x0, y - j.y0, j.size)
        guard u >= 0, v >= 0, u < s, v < s else { return false }
        switch shape {
        case .square:
            return true
        case .circle:
            // Doubled coordinates keep the half-pixel centre an integer.
            let dx = 2 * u + 1 - s, dy = 2 * v + 1 - s
            return dx * dx + dy * dy <= s * s
        case .triangle:
            // Apex up: row v is v + 1 pixels wide (doubled half-width v + 1 around the centre).
            return abs(2 * u + 1 - s) <= v + 1
        case .cross:
            // A plus: a centred bar each way, s - 6 px wide (3 or 4), so each arm sticks out 3 px and the
            // box's diagonal quarters stay empty, unlike a disc's.
            let w = s - 6
            return abs(2 * u + 1 - s) < w || abs(2 * v + 1 - s) < w
        }
    }

    /// Whether a silhouette pixel is painted in the style's pattern.
    static func painted(_ style: WorldStyle, shape: WorldShape, x: Int, y: Int, jitter j: Jitter) -> Bool {
        let (u, v) = (x - j.x0, y - j.y0)
        switch style {
        case .flat:
            return true
        case .stripes:
            return (v / 2) % 2 == 0
        case .checker:
            return (v / 2 + u / 2) % 2 == 0
        case .outline:
            return !inside(shape, x: x - 1, y: y, jitter: j) || !inside(shape, x: x + 1, y: y, jitter: j)
                || !inside(shape, x: x, y: y - 1, jitter: j) || !inside(shape, x: x, y: y + 1, jitter: j)
        }
    }

    /// One image [3 * 16 * 16] (CHW) of `prompt` with the given variation.
    public static func render(_ prompt: WorldPrompt, jitter j: Jitter) -> [Float] {
        let side = WorldSize.side
        var out = [Float](repeating: 0, count: WorldSize.pixels)
        for c in 0..<3 {
            let background = Float(j.grey + j.tint[c]) / 20
            let colour = c == prompt.colour.channel ? Float(18 - j.shade) / 20 : Float(j.dark[c] - 16) / 20
            for y in 0..<side {
                for x in 0..<side {
                    let on = inside(prompt.shape, x: x, y: y, jitter: j)
                        && painted(prompt.style, shape: prompt.shape, x: x, y: y, jitter: j)
                    out[(c * side + y) * side + x] = on ? colour : background
                }
            }
        }
        return out
    }

    /// The render of item `index` of `prompt` in stream `split` of world `seed`.
    public static func render(_ prompt: WorldPrompt, seed: UInt64, split: WorldSplit, index: Int) -> [Float] {
        var rng = WorldRandom(stream: [seed, split.streamID, UInt64(prompt.index), UInt64(index)])
        return render(prompt, jitter: Jitter(&rng))
    }
}

/// Disjoint random streams: training renders, held-out renders and the detectors' validation renders
/// never share a jitter draw.
public enum WorldSplit: String, Sendable, CaseIterable {
    case train, heldout, validation

    var streamID: UInt64 {
        switch self {
        case .train: 1
        case .heldout: 2
        case .validation: 3
        }
    }
}
