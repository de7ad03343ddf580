/// SplitMix64 (Steele, Lea and Flood 2014): the one seedable integer generator every random stream in
/// dmsurgery is built on (generated weights, samplers and training, the concept world, random pruning).
/// Its whole state is one integer, so a checkpoint can store it, and its output is specified, unlike
/// Foundation's generators, so a seed gives the same bytes on every machine.
public struct SplitMix64: Sendable, Equatable {
    public var state: UInt64

    public init(state: UInt64) { self.state = state }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
