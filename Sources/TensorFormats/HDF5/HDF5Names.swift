/// How HDF5 paths become dotted tensor names and back (formats/hdf5.md, "Names").
///
/// Nested layouts (Keras 2, Keras 3, generic): the path's components, relative to the weights root,
/// joined with `.`, where a component's own `%` and `.` are written `%25` and `%2E`. So
/// `layers/dense/vars/0` is `layers.dense.vars.0` and `decoder.v2/scale` is `decoder%2Ev2.scale`;
/// splitting on `.` and decoding each component gives the path back.
///
/// The flat dmsurgery layout: each tensor is one dataset at the root, its link name the tensor name
/// with `%` written `%25`, `/` written `%2F` and a leading `.` written `%2E` (HDF5 reserves `/` and `.`).
public enum HDF5Names {
    /// The dotted name of a path given as components.
    public static func dottedName(components: [String]) -> String {
        components.map { escape($0, reserved: [".", "%"]) }.joined(separator: ".")
    }

    /// The path components of a dotted name; nil when a component would be empty (HDF5 has no empty names).
    public static func components(dottedName: String) -> [String]? {
        let parts = dottedName.split(separator: ".", omittingEmptySubsequences: false).map { percentDecode(String($0)) }
        guard !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else { return nil }
        return parts
    }

    /// The root-level link name of a tensor in the dmsurgery layout; nil for the empty name.
    public static func flatLinkName(tensor: String) -> String? {
        guard !tensor.isEmpty else { return nil }
        var name = escape(tensor, reserved: ["%", "/"])
        if name.hasPrefix(".") { name = "%2E" + name.dropFirst() }
        return name
    }

    /// The tensor name of a root-level link in the dmsurgery layout.
    public static func tensorName(flatLinkName: String) -> String { percentDecode(flatLinkName) }

    private static func escape(_ text: String, reserved: Set<Character>) -> String {
        guard text.contains(where: { reserved.contains($0) }) else { return text }
        var out = ""
        for character in text {
            if reserved.contains(character), let ascii = character.asciiValue {
                out += "%" + String(ascii, radix: 16, uppercase: true)
            } else {
                out.append(character)
            }
        }
        return out
    }

    /// Decodes `%XX` (two hex digits) to the byte it names; anything else stays as written.
    static func percentDecode(_ text: String) -> String {
        guard text.contains("%") else { return text }
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count,
               let high = hexValue(bytes[i + 1]), let low = hexValue(bytes[i + 2]) {
                out.append(high << 4 | low)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        default: return nil
        }
    }

    /// Sibling order when a group does not track creation order: names in byte order, except that
    /// all-digit names come first in numeric order (Keras 3's `vars/0`, `vars/1`, ..., `vars/10`).
    static func siblingOrder(_ a: String, _ b: String) -> Bool {
        let aDigits = !a.isEmpty && a.utf8.allSatisfy { $0 >= 48 && $0 <= 57 }
        let bDigits = !b.isEmpty && b.utf8.allSatisfy { $0 >= 48 && $0 <= 57 }
        switch (aDigits, bDigits) {
        case (true, false): return true
        case (false, true): return false
        case (true, true):
            let (x, y) = (a.drop(while: { $0 == "0" }), b.drop(while: { $0 == "0" }))
            if x.count != y.count { return x.count < y.count }
            if x != y { return x < y }
            return a.utf8.lexicographicallyPrecedes(b.utf8)
        case (false, false):
            return a.utf8.lexicographicallyPrecedes(b.utf8)
        }
    }
}
