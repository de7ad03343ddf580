import ConceptWorld
import Foundation
import TensorFormats

/// What `world` is told, as plain values.
public struct WorldSettings: Sendable {
    /// Output directory (created if missing).
    public var dir: String
    public var seed: UInt64 = 0
    /// Renders per prompt (all, retain) and per retain prompt (heldout): each at least 1.
    public var perPrompt = 64
    public var heldoutPerPrompt = 8
    /// Which concepts the files forget (`--concept`); `.style` is the original world, byte for byte.
    public var concept: WorldConcept = .style
    public var quiet = false

    public init(dir: String) {
        self.dir = dir
    }
}

/// `world`'s body: the concept world's data files, or its prompt list.
public enum WorldWorkflow {
    /// The prompts, one a line: index, forget or retain, text (tab-separated).
    public static var promptList: String { promptList(.style) }

    /// The prompts of the world that forgets `concept`.
    public static func promptList(_ concept: WorldConcept) -> String {
        concept.prompts.enumerated().map { "\($0.offset)\t\(concept.isForget($0.element) ? "forget" : "retain")\t\($0.element.text)" }
            .joined(separator: "\n")
    }

    /// Writes the four safetensors files and world.json into the directory; returns their paths.
    @discardableResult
    public static func run(_ s: WorldSettings) throws -> [String] {
        let dir = s.dir
        let world = WorldDataset(seed: s.seed, perPrompt: s.perPrompt, heldoutPerPrompt: s.heldoutPerPrompt, concept: s.concept)
        try world.checkMemory()
        try OutputFile.createFolder(dir)
        var written: [String] = []
        let files: [(String, () -> WorldDataset.Tensors)] = [
            ("all.safetensors", { world.all }), ("retain.safetensors", { world.retain }),
            ("forget.safetensors", { world.forget }), ("heldout.safetensors", { world.heldout }),
        ]
        for (name, make) in files {
            let data = make()
            let path = (dir as NSString).appendingPathComponent(name)
            try SafetensorsWriter.writeFloats(data.tensors, metadata: data.metadata, to: path)
            let shapes = data.tensors.map { "\($0.name) \(formatShape($0.shape))" }.joined(separator: ", ")
            note("wrote \(path): \(shapes)", quiet: s.quiet)
            written.append(path)
        }
        let path = (dir as NSString).appendingPathComponent("world.json")
        let output = try OutputFile(path: path)
        try output.write(Array((JSONWriter.pretty(world.description) + "\n").utf8))
        try output.commit()
        written.append(path)
        let concepts = s.concept.concepts.map { "\($0.rawValue) '\($0.token)'" }.joined(separator: " and ")
        note("wrote \(path): \(s.concept.prompts.count) prompts (\(s.concept.forget.count) forget, \(concepts)), seed \(s.seed)", quiet: s.quiet)
        return written
    }
}
