import Foundation
import TensorFormats

/// Where a diffusers pipeline folder keeps its parts (`model_index.json` beside `unet/`, `vae/`,
/// `text_encoder/`, `tokenizer/`, `scheduler/`, and SDXL's `text_encoder_2/`, `tokenizer_2/`).
///
/// Commands that need one part also accept that part's own folder: `vae` takes a VAE folder, and
/// `encode-prompt` a folder holding `text_encoder/` and `tokenizer/` only.
public struct PipelineParts: Sendable {
    public let root: String

    public init(_ root: String) {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    /// `root/name` when that folder exists.
    public func part(_ name: String) -> String? {
        let path = root + "/" + name
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue ? path : nil
    }

    /// The (tokenizer, text encoder) pairs in the pipeline's order: `tokenizer`+`text_encoder`, then
    /// `tokenizer_2`+`text_encoder_2` (SDXL); a part without its partner is refused.
    public func textEncoders() throws(CLIPError) -> [(tokenizer: String, encoder: String)] {
        var pairs: [(String, String)] = []
        for suffix in ["", "_2"] {
            let tokenizer = part("tokenizer" + suffix), encoder = part("text_encoder" + suffix)
            switch (tokenizer, encoder) {
            case let (t?, e?): pairs.append((t, e))
            case (nil, nil): continue
            default:
                throw CLIPError(.modelBadConfig, "text_encoder\(suffix)/ and tokenizer\(suffix)/ must come together", file: root)
            }
        }
        guard !pairs.isEmpty else {
            throw CLIPError(.modelBadConfig, "no text_encoder/ and tokenizer/ folders: not a text-to-image pipeline", file: root)
        }
        return pairs
    }

    /// The VAE folder: `root/vae` for a pipeline, else `root` itself.
    public var vae: String { part("vae") ?? root }

    /// A boolean of model_index.json (`force_zeros_for_empty_prompt` of SDXL pipelines), nil if absent.
    public func indexFlag(_ key: String) -> Bool? {
        guard let text = try? MappedFile.text(of: root + "/model_index.json"),
              case .object(let members)? = try? JSONParser.parse(text),
              case .bool(let value)? = members.last(where: { $0.key == key })?.value else { return nil }
        return value
    }
}
