/// How an output is compressed, from `--compress codec[:level]`: a whole safetensors output as a zstd
/// stream, or HDF5 datasets (chunked storage, byte shuffle, then gzip/deflate or zstd filter 32015).
public struct OutputCompression: Sendable, Equatable {
    public enum Codec: String, Sendable, CaseIterable {
        case gzip, zstd
    }

    public var codec: Codec
    public var level: Int

    public static let defaultLevels: [Codec: Int] = [.gzip: 4, .zstd: 3]

    public init(codec: Codec, level: Int? = nil) {
        self.codec = codec
        self.level = level ?? OutputCompression.defaultLevels[codec]!
    }

    /// `gzip`, `gzip:LEVEL` (0-9), `zstd` or `zstd:LEVEL` (1-22); nil otherwise.
    public init?(parsing text: String) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard let first = parts.first, let codec = Codec(rawValue: first.lowercased()) else { return nil }
        var level: Int?
        if parts.count == 2 {
            guard let value = Int(parts[1]) else { return nil }
            level = value
        }
        self.init(codec: codec, level: level)
        switch codec {
        case .gzip: guard (0...9).contains(self.level) else { return nil }
        case .zstd: guard (1...22).contains(self.level) else { return nil }
        }
    }
}
