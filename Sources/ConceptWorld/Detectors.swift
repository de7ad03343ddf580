/// What the detectors read in one image; nil where nothing recognisable is there.
public struct Detection: Equatable, Sendable {
    public var colour: WorldColour?
    public var shape: WorldShape?
    public var style: WorldStyle?

    public init(colour: WorldColour? = nil, shape: WorldShape? = nil, style: WorldStyle? = nil) {
        self.colour = colour
        self.shape = shape
        self.style = style
    }

    /// Colour, shape and style all as prompted.
    public func matches(_ prompt: WorldPrompt) -> Bool {
        colour == prompt.colour && shape == prompt.shape && style == prompt.style
    }
}

/// Hand-written detectors for the world's attributes (formats/concept-world.md explains each rule).
///
/// They are not trained, so they cannot learn a model's artefacts, and they are validated only on
/// ground-truth renders (clean, and with noise and blur), never tuned on samples.
public enum Detector {
    /// Chroma (max - min channel) below which a pixel counts as background grey whatever its hue.
    static let minimumChroma: Float = 0.3
    /// A foreground pixel is one whose colour contrast reaches this share of the image's foreground level.
    static let foregroundShare: Float = 0.6
    /// An interior pixel counts as painted at this share of the foreground level: higher than the
    /// foreground threshold, because a blurred 1-px outline bleeds up to ~0.7 of its level inwards while
    /// a blurred texture keeps its painted cells at the full level.
    static let solidShare: Float = 0.7
    /// Top-half / bottom-half area of the silhouette below which it is the apex-up triangle.
    static let triangleBalance: Float = 0.6
    /// Share of the four 2x2 corner blocks of the bounding box inside the silhouette from which it is
    /// a square (a disc of the world's sizes has none of them).
    static let squareCorners: Float = 0.5
    /// Mean share of the box's width (height) that the silhouette covers in the two rows (columns) one
    /// and two pixels in from each side, below which on all four sides the shape is the cross (arms
    /// 0.33-0.4 of the box; a disc 0.78-0.89).
    static let crossArmShare: Float = 0.6
    /// Share of the silhouette's interior that is painted (see `solidShare`) below which the shape is
    /// only outlined (stripes and checker paint about half of it, flat all).
    static let outlineInterior: Float = 0.25
    /// Period-4 texture strength (share of the foreground level) below which the fill is flat.
    static let textureStrength: Float = 0.1

    /// Reads `image`; `shapes` are the shapes the world draws (a shape outside them is never reported,
    /// so the original world's readings do not change with the object concept).
    public static func detect(_ image: [Float], shapes: [WorldShape] = WorldShape.base) -> Detection {
        let n = WorldSize.side, area = n * n
        precondition(image.count == WorldSize.pixels, "image of \(image.count) values")
        func value(_ c: Int, _ i: Int) -> Float { image[c * area + i] }

        // Colour: the channel that stands out of the saturated pixels.
        var channelExcess = [Float](repeating: 0, count: 3)
        var saturated = 0
        for i in 0..<area {
            let v = (0..<3).map { value($0, i) }
            guard v.max()! - v.min()! >= minimumChroma else { continue }
            saturated += 1
            for c in 0..<3 { channelExcess[c] += v[c] - (v.reduce(0, +) - v[c]) / 2 }
        }
        guard saturated >= 4, let best = channelExcess.indices.max(by: { channelExcess[$0] < channelExcess[$1] }),
              channelExcess[best] > 0 else { return Detection() }
        let colour = WorldColour.allCases.first { $0.channel == best }

        // Contrast of every pixel in that colour's direction, and the foreground level (mean of the
        // 12 strongest pixels: fewer than the thinnest outline has).
        let contrast = (0..<area).map { i in value(best, i) - (value((best + 1) % 3, i) + value((best + 2) % 3, i)) / 2 }
        let level = contrast.sorted(by: >).prefix(12).reduce(0, +) / 12
        guard level > minimumChroma else { return Detection(colour: colour) }
        let foreground = removingIsolated(contrast.map { $0 >= foregroundShare * level })

        let silhouette = filled(foreground)
        let shape = classifyShape(silhouette, cross: shapes.contains(.cross))
        let style = classifyStyle(contrast: contrast, silhouette: silhouette, level: level)
        return Detection(colour: colour, shape: shape, style: style)
    }

    /// Drops foreground pixels with no foreground 8-neighbour: noise specks, not drawing (a lone
    /// corner of a checker cell still touches its diagonal neighbour).
    static func removingIsolated(_ mask: [Bool]) -> [Bool] {
        let n = WorldSize.side
        return (0..<n * n).map { i in
            guard mask[i] else { return false }
            let (x, y) = (i % n, i / n)
            var neighbours = 0
            for dy in -1...1 { for dx in -1...1 where dx != 0 || dy != 0 {
                let (u, v) = (x + dx, y + dy)
                if u >= 0, v >= 0, u < n, v < n, mask[v * n + u] { neighbours += 1 }
            } }
            return neighbours >= 1
        }
    }

    /// The silhouette: foreground plus every pixel enclosed by foreground along its row or its column,
    /// which closes outlines, stripes and checkers into the convex shape they were drawn in.
    static func filled(_ mask: [Bool]) -> [Bool] {
        let n = WorldSize.side
        var out = mask
        for y in 0..<n {
            let row = (0..<n).filter { mask[y * n + $0] }
            if let first = row.first, let last = row.last { for x in first...last { out[y * n + x] = true } }
        }
        for x in 0..<n {
            let column = (0..<n).filter { mask[$0 * n + x] }
            if let first = column.first, let last = column.last { for y in first...last { out[y * n + x] = true } }
        }
        return out
    }

    static func eroded(_ mask: [Bool]) -> [Bool] {
        let n = WorldSize.side
        return (0..<n * n).map { i in
            let (x, y) = (i % n, i / n)
            return mask[i] && x > 0 && y > 0 && x < n - 1 && y < n - 1
                && mask[i - 1] && mask[i + 1] && mask[i - n] && mask[i + n]
        }
    }

    static func classifyShape(_ silhouette: [Bool], cross: Bool = false) -> WorldShape? {
        let n = WorldSize.side
        let pixels = (0..<n * n).filter { silhouette[$0] }
        guard pixels.count >= 12 else { return nil }
        let xs = pixels.map { $0 % n }, ys = pixels.map { $0 / n }
        let (x0, x1, y0, y1) = (xs.min()!, xs.max()!, ys.min()!, ys.max()!)
        // A cross's four arms: the two rows (columns) one and two pixels in from each side of its box
        // cover only the arm's width (3-4 of 9-10 px); a disc's, a square's or a triangle's base rows
        // cover most of the box. Tested first: a striped cross may lose a row of its bar and look
        // bottom-heavy.
        if cross, x1 - x0 >= 5, y1 - y0 >= 5 {
            func row(_ y: Int) -> Float { Float((x0...x1).filter { silhouette[y * n + $0] }.count) / Float(x1 - x0 + 1) }
            func column(_ x: Int) -> Float { Float((y0...y1).filter { silhouette[$0 * n + x] }.count) / Float(y1 - y0 + 1) }
            let arms = [row(y0 + 1) + row(y0 + 2), row(y1 - 1) + row(y1 - 2), column(x0 + 1) + column(x0 + 2), column(x1 - 1) + column(x1 - 2)]
            if arms.allSatisfy({ $0 / 2 < crossArmShare }) { return .cross }
        }
        // Rows strictly above and below the middle; the middle row of an odd height counts for neither.
        let top = ys.filter { 2 * ($0 - y0) + 1 < y1 - y0 + 1 }.count
        let bottom = ys.filter { 2 * ($0 - y0) + 1 > y1 - y0 + 1 }.count
        if Float(top) < triangleBalance * Float(max(bottom, 1)) { return .triangle }
        // A disc misses the 2x2 block in each corner of its box entirely; a square fills them.
        var corners = 0
        for (cx, cy) in [(x0, y0), (x1 - 1, y0), (x0, y1 - 1), (x1 - 1, y1 - 1)] {
            for dy in 0..<2 { for dx in 0..<2 where silhouette[(cy + dy) * n + cx + dx] { corners += 1 } }
        }
        return Float(corners) >= squareCorners * 16 ? .square : .circle
    }

    static func classifyStyle(contrast: [Float], silhouette: [Bool], level: Float) -> WorldStyle? {
        let n = WorldSize.side
        let inner = eroded(silhouette)
        let innerPixels = (0..<n * n).filter { inner[$0] }
        guard innerPixels.count >= 4 else { return nil }
        let painted = innerPixels.filter { contrast[$0] >= solidShare * level }.count
        if Float(painted) < outlineInterior * Float(innerPixels.count) { return .outline }

        // Period-4 texture: the best-phase correlation of the centred contrast with horizontal stripes
        // (rows two on, two off) and with a 2x2 checker.
        let mean = innerPixels.reduce(Float(0)) { $0 + contrast[$1] } / Float(innerPixels.count)
        func sign(_ k: Int) -> Float { (k / 2) % 2 == 0 ? 1 : -1 }
        var stripes: Float = 0, checker: Float = 0
        for py in 0..<4 {
            var s: Float = 0
            for i in innerPixels { s += (contrast[i] - mean) * sign(i / n + py) }
            stripes = max(stripes, abs(s))
            for px in 0..<4 {
                var k: Float = 0
                for i in innerPixels { k += (contrast[i] - mean) * sign(i / n + py) * sign(i % n + px) }
                checker = max(checker, abs(k))
            }
        }
        stripes /= Float(innerPixels.count) * level
        checker /= Float(innerPixels.count) * level
        if max(stripes, checker) < textureStrength { return .flat }
        return stripes >= checker ? .stripes : .checker
    }
}
