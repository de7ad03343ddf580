/// The sizes a graph's inputs take: left to the runtime (named dims, the default), or fixed for runtimes
/// that need static shapes (`--static BATCHxHxW`).
public struct IOShape: Sendable, Equatable {
    /// nil: symbolic dims.
    public var fixed: (batch: Int, height: Int, width: Int)?

    public static let dynamic = IOShape(fixed: nil)

    public init(fixed: (batch: Int, height: Int, width: Int)?) { self.fixed = fixed }

    public static func == (a: IOShape, b: IOShape) -> Bool {
        switch (a.fixed, b.fixed) {
        case (nil, nil): true
        case let (x?, y?): x == y
        default: false
        }
    }

    var batch: Dimension { fixed.map { .fixed($0.batch) } ?? .symbolic("batch") }

    /// Height and width divided by `factor` when fixed (a latent's sides from an image's), else named.
    func spatial(_ names: (String, String), dividedBy factor: Int = 1) -> [Dimension] {
        guard let fixed else { return [.symbolic(names.0), .symbolic(names.1)] }
        return [.fixed(fixed.height / factor), .fixed(fixed.width / factor)]
    }
}
