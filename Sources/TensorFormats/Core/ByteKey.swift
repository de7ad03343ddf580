/// A name compared and hashed by its UTF-8 bytes, for every set or dictionary of tensor, metadata or
/// JSON keys.
///
/// Swift's `String` equality is Unicode canonical equivalence: "é" precomposed (U+00E9) equals "e" +
/// U+0301. Formats compare names byte for byte (the reference safetensors reader keys a Rust
/// `HashMap<String, _>`, which compares bytes), so two such names are two distinct, valid tensors, and
/// a `Set<String>` would refuse the file as a duplicate or merge the two tensors into one.
public struct ByteKey: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    public init(_ name: String) { bytes = Array(name.utf8) }
    public var name: String { String(decoding: bytes, as: UTF8.self) }
    public var description: String { name }
}
