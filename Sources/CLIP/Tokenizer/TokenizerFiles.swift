import CZlib
import TensorFormats

/// Reading the small text files a tokenizer folder holds, with the size limits that keep a hostile
/// folder from sizing an allocation.
enum TokenizerFiles {
    /// vocab.json and merges.txt of real CLIP vocabularies are ~1 MB; 256 MB leaves room for any BPE
    /// vocabulary while refusing a file that would exhaust memory once expanded into dictionaries.
    static let maximumFileBytes = 256 << 20

    /// Whether `path` names an existing file (a folder check uses this before reading optional files).
    static func exists(_ path: String) -> Bool {
        (try? MappedFile(path: path)) != nil
    }

    /// The whole file as bytes, refused past `maximumFileBytes`.
    static func bytes(_ path: String) throws(CLIPError) -> [UInt8] {
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch {
            throw CLIPError(.tokenizerMissingFile, "cannot read: \(error.message)", file: path, cause: error)
        }
        guard file.size <= maximumFileBytes else {
            throw CLIPError(.tokenizerBadConfig, "file of \(file.size) bytes is larger than the \(maximumFileBytes)-byte limit", file: path)
        }
        return Array(file.bytes(0..<file.size))
    }

    /// The file as UTF-8 text; anything else is refused (the reference reads these files as UTF-8).
    static func text(_ path: String) throws(CLIPError) -> String {
        try utf8(bytes(path), path)
    }

    static func utf8(_ bytes: [UInt8], _ path: String) throws(CLIPError) -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw CLIPError(.tokenizerNotUTF8, "not valid UTF-8", file: path)
        }
        return text
    }

    /// A JSON file parsed with the project's strict parser (duplicate keys allowed: the reference's
    /// `json.load` keeps the last, and so do the readers here).
    static func json(_ path: String) throws(CLIPError) -> JSONValue {
        let data = try bytes(path)
        do {
            return try data.withUnsafeBytes { raw throws(JSONParseError) in
                try JSONParser.parse(raw, rejectDuplicateKeys: false)
            }
        } catch let error as JSONParseError {
            throw CLIPError(.tokenizerInvalidJSON, "invalid JSON at byte \(error.offset): \(error.message)", file: path, cause: error)
        } catch {
            throw CLIPError(.tokenizerInvalidJSON, "invalid JSON", file: path)
        }
    }

    /// The decompressed bytes of a gzip file (open_clip's `bpe_simple_vocab_16e6.txt.gz`), through zlib.
    static func gunzip(_ path: String) throws(CLIPError) -> [UInt8] {
        let compressed = try bytes(path)
        var stream = z_stream()
        guard dms_inflate_init_gzip(&stream) == Z_OK else {
            throw CLIPError(.tokenizerBadGzip, "zlib could not start", file: path)
        }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var status = Z_OK
        compressed.withUnsafeBufferPointer { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
            stream.avail_in = UInt32(input.count)
            while status == Z_OK {
                chunk.withUnsafeMutableBufferPointer { buffer in
                    stream.next_out = buffer.baseAddress
                    stream.avail_out = UInt32(buffer.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                }
                let produced = chunk.count - Int(stream.avail_out)
                output.append(contentsOf: chunk[0..<produced])
                if output.count > maximumFileBytes { status = Z_MEM_ERROR }
                if status == Z_BUF_ERROR && stream.avail_in == 0 { break }
            }
        }
        guard status == Z_STREAM_END else {
            let reason = status == Z_MEM_ERROR ? "expands past the \(maximumFileBytes)-byte limit" : "truncated or corrupt gzip data (zlib status \(status))"
            throw CLIPError(.tokenizerBadGzip, reason, file: path)
        }
        return output
    }
}
