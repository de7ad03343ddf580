import TensorFormats

/// Which units of each layer a pruned checkpoint keeps, and how they were chosen: the file behind
/// `prune --emit-mask` / `--mask` (formats/mask.md) and, compact, the `dmsurgery.mask` metadata value.
public struct PruningMask: Sendable, Equatable {
    public struct Layer: Sendable, Equatable {
        public var name: String
        public var kind: PrunableKind
        /// Units the layer had before pruning.
        public var units: Int
        public var unitSize: Int
        /// Kept unit indices, ascending.
        public var kept: [Int]

        public init(name: String, kind: PrunableKind, units: Int, unitSize: Int, kept: [Int]) {
            self.name = name
            self.kind = kind
            self.units = units
            self.unitSize = unitSize
            self.kept = kept
        }
    }

    public static let formatName = "dmsurgery-mask"
    public static let version = 1

    public var criterion: String
    /// nil for a hand-written mask.
    public var ratio: Double?
    public var global: Bool
    /// The random criterion's seed.
    public var seed: UInt64?
    /// `tensors_sha256` of the checkpoint the mask was chosen on (formats/mask.md).
    public var sourceSHA256: String
    public var layers: [Layer]

    public init(criterion: String, ratio: Double?, global: Bool, seed: UInt64?, sourceSHA256: String, layers: [Layer]) {
        self.criterion = criterion
        self.ratio = ratio
        self.global = global
        self.seed = seed
        self.sourceSHA256 = sourceSHA256
        self.layers = layers
    }

    /// The mask of `units` keeping `kept[i]` of layer i.
    public init(units: PruningUnits, kept: [[Int]], criterion: String, ratio: Double?, global: Bool, seed: UInt64?,
                sourceSHA256: String) {
        self.init(criterion: criterion, ratio: ratio, global: global, seed: seed, sourceSHA256: sourceSHA256,
                  layers: zip(units.layers, kept).map { Layer(name: $0.name, kind: $0.kind, units: $0.units, unitSize: $0.unitSize, kept: $1) })
    }

    private var header: [JSONMember] {
        var members = [JSONMember("format", .string(Self.formatName)), JSONMember("version", .int(Self.version)),
                       JSONMember("criterion", .string(criterion))]
        members.append(JSONMember("ratio", ratio.map { .number("\($0)") } ?? .null))
        members.append(JSONMember("global", .bool(global)))
        if let seed { members.append(JSONMember("seed", .number(String(seed)))) }
        members.append(JSONMember("source", .object([JSONMember("tensors_sha256", .string(sourceSHA256))])))
        return members
    }

    private func layerJSON(_ layer: Layer) -> JSONValue {
        .object([JSONMember("name", .string(layer.name)), JSONMember("kind", .string(layer.kind.rawValue)),
                 JSONMember("units", .int(layer.units)), JSONMember("unit_size", .int(layer.unitSize)),
                 JSONMember("kept", .ints(layer.kept))])
    }

    /// One line, for metadata.
    public var compactJSON: String {
        JSONWriter.compact(.object(header + [JSONMember("layers", .array(layers.map(layerJSON)))]))
    }

    /// The mask file: the header indented, one line per layer, so it reads and diffs line by line.
    public var fileJSON: String {
        var out = "{\n"
        for member in header {
            out += "  " + JSONWriter.compact(.string(member.key)) + ": " + JSONWriter.compact(member.value) + ",\n"
        }
        out += "  \"layers\": ["
        for (i, layer) in layers.enumerated() {
            out += (i == 0 ? "\n" : ",\n") + "    " + JSONWriter.compact(layerJSON(layer))
        }
        out += layers.isEmpty ? "]\n}\n" : "\n  ]\n}\n"
        return out
    }

    /// Parses a mask file or metadata value; every problem is a `bad-mask` error naming the layer when
    /// it is about one.
    public init(json text: String, file: String) throws {
        func bad(_ message: String, layer: String? = nil) -> SurgeryError {
            SurgeryError(.badMask, (layer.map { "layer '\($0)': " } ?? "") + message, file: file)
        }
        let value: JSONValue
        do { value = try JSONParser.parse(text) } catch { throw bad("not valid JSON (\(error.message))") }
        guard case .object = value else { throw bad("not a JSON object") }
        guard value["format"]?.stringValue == Self.formatName else { throw bad("\"format\" must be \"\(Self.formatName)\"") }
        guard value["version"]?.intValue == Self.version else { throw bad("\"version\" must be \(Self.version)") }
        guard let criterion = value["criterion"]?.stringValue else { throw bad("\"criterion\" must be a string") }
        self.criterion = criterion
        switch value["ratio"] {
        case nil, .null?: ratio = nil
        case let r?:
            guard let d = r.doubleValue, d >= 0, d < 1 else { throw bad("\"ratio\" must be a number in [0, 1) or null") }
            ratio = d
        }
        switch value["global"] {
        case nil: global = false
        case .bool(let b)?: global = b
        default: throw bad("\"global\" must be true or false")
        }
        if let s = value["seed"] {
            guard let u = s.unsignedValue else { throw bad("\"seed\" must be a non-negative integer") }
            seed = u
        } else {
            seed = nil
        }
        sourceSHA256 = value["source"]?["tensors_sha256"]?.stringValue ?? ""
        guard case .array(let list)? = value["layers"] else { throw bad("\"layers\" must be a list") }
        var layers: [Layer] = []
        var seen = Set<String>()
        for item in list {
            guard let name = item["name"]?.stringValue else { throw bad("every layer needs a \"name\" string") }
            guard seen.insert(name).inserted else { throw bad("listed twice", layer: name) }
            guard let kind = item["kind"]?.stringValue.flatMap(PrunableKind.init(rawValue:)) else {
                throw bad("\"kind\" must be one of \(PrunableKind.allCases.map(\.rawValue).joined(separator: ", "))", layer: name)
            }
            guard let units = item["units"]?.intValue, units > 0 else { throw bad("\"units\" must be a positive integer", layer: name) }
            guard let unitSize = item["unit_size"]?.intValue, unitSize > 0 else {
                throw bad("\"unit_size\" must be a positive integer", layer: name)
            }
            guard case .array(let keptValues)? = item["kept"] else { throw bad("\"kept\" must be a list of unit indices", layer: name) }
            var kept: [Int] = []
            for v in keptValues {
                guard let k = v.intValue, v.unsignedValue != nil else { throw bad("\"kept\" holds \(JSONWriter.compact(v)), not a unit index", layer: name) }
                guard k < units else { throw bad("unit \(k) is out of range (\(units) units)", layer: name) }
                kept.append(k)
            }
            guard !kept.isEmpty else { throw bad("keeps no unit (at least one must stay)", layer: name) }
            guard Set(kept).count == kept.count else { throw bad("a unit index is listed twice", layer: name) }
            layers.append(Layer(name: name, kind: kind, units: units, unitSize: unitSize, kept: kept.sorted()))
        }
        self.layers = layers
    }

    /// The kept units per layer of `units`, checked against this mask: every masked layer must exist with
    /// the same kind, unit count and unit size; layers the mask does not list keep every unit.
    public func kept(for units: PruningUnits, file: String) throws -> [[Int]] {
        let byName = Dictionary(uniqueKeysWithValues: layers.map { ($0.name, $0) })
        let known = Set(units.layers.map(\.name))
        if let unknown = layers.first(where: { !known.contains($0.name) }) {
            throw SurgeryError(.badMask, "layer '\(unknown.name)': the model has no such prunable layer", file: file)
        }
        return try units.layers.map { layer in
            guard let m = byName[layer.name] else { return Array(0..<layer.units) }
            func bad(_ message: String) -> SurgeryError {
                SurgeryError(.badMask, "layer '\(layer.name)': " + message, file: file)
            }
            guard m.kind == layer.kind else { throw bad("kind \(m.kind.rawValue), the model's layer is \(layer.kind.rawValue)") }
            guard m.units == layer.units else { throw bad("\(m.units) units, the model's layer has \(layer.units)") }
            guard m.unitSize == layer.unitSize else { throw bad("unit size \(m.unitSize), the model's is \(layer.unitSize)") }
            return m.kept
        }
    }
}

extension ErrorCode {
    /// A pruning mask that is malformed or does not fit the model.
    public static let badMask = ErrorCode(rawValue: "bad-mask")
}
