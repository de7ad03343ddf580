import Foundation

/// What a file's first bytes say it is, so a wrong guess is named instead of misparsed: a `.ckpt` read
/// as safetensors used to report "header-too-large: header length 578712552184433488".
///
/// Safetensors is recognised first and conservatively (its header length is below 100 MB, so bytes
/// 4-7 are zero, and the JSON starts with `{`, perhaps after spaces), because a header length can
/// begin with any byte, 0x80 (a pickle's PROTO) included. Everything else is recognised by its magic.
public enum SniffedFormat: Equatable, Sendable {
    case safetensors
    /// torch.save's zip container (or any zip: the torch reader tells them apart by `data.pkl`).
    case zip
    /// A bare pickle: torch.save's legacy container when it starts with torch's magic number.
    case pickle(legacyTorch: Bool)
    case gguf, hdf5, zstd, numpy, tar, text
    /// A serialized ONNX ModelProto (no magic: recognised by its first fields, `ONNXModel.looksLikeModel`).
    case onnx
    case unknown

    /// Bytes `sniff` looks at.
    public static let prefixLength = 512

    public init<C: Collection>(prefix: C) where C.Element == UInt8 {
        let bytes = Array(prefix.prefix(Self.prefixLength))
        func starts(_ magic: [UInt8], at offset: Int = 0) -> Bool {
            bytes.count >= offset + magic.count && Array(bytes[offset..<(offset + magic.count)]) == magic
        }
        if bytes.count >= 9, bytes[4..<8].allSatisfy({ $0 == 0 }),
           let first = bytes[8...].first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }), first == UInt8(ascii: "{") {
            self = .safetensors
        } else if starts([0x50, 0x4B, 0x03, 0x04]) || starts([0x50, 0x4B, 0x05, 0x06]) {
            self = .zip
        } else if starts([0x80, 0x02, 0x8A, 0x0A] + Checkpoint.torchLegacyMagic) {
            self = .pickle(legacyTorch: true)
        } else if bytes.count >= 3, bytes[0] == 0x80, (2...5).contains(bytes[1]), bytes[2] != 0 {
            // PROTO 2...5 and any opcode (none is 0x00, which a safetensors length of 0x0280 bytes has
            // there): `pickle.dumps(1, protocol=4)` starts with BININT1, a small tuple with MARK.
            self = .pickle(legacyTorch: false)
        } else if starts(Array("GGUF".utf8)) {
            self = .gguf
        } else if starts([0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]) {
            self = .hdf5
        } else if starts([0x28, 0xB5, 0x2F, 0xFD]) {
            self = .zstd
        } else if starts([0x93] + Array("NUMPY".utf8)) {
            self = .numpy
        } else if starts(Array("ustar".utf8), at: 257) {
            self = .tar
        } else if ONNXModel.looksLikeModel(bytes) {
            self = .onnx
        } else if !bytes.isEmpty, String(validating: bytes.prefix(bytes.count == Self.prefixLength ? bytes.count - 3 : bytes.count), as: UTF8.self)?
                    .unicodeScalars.allSatisfy({ $0.value >= 0x20 || [0x09, 0x0A, 0x0D].contains($0.value) }) == true {
            self = .text
        } else {
            self = .unknown
        }
    }

    /// PyTorch files and ONNX models are read from a map: on a pipe they are spooled to a file first.
    public var needsFile: Bool {
        switch self {
        case .zip, .pickle, .onnx: return true
        default: return false
        }
    }

    /// How the file is named in a message.
    public var description: String {
        switch self {
        case .safetensors: return "a safetensors file"
        case .zip: return "a zip archive"
        case .pickle(let legacy): return legacy ? "a PyTorch pickle (legacy torch.save format)" : "a Python pickle"
        case .gguf: return "a GGUF file"
        case .hdf5: return "an HDF5 file"
        case .zstd: return "a zstd stream"
        case .numpy: return "a NumPy .npy array (not a checkpoint)"
        case .tar: return "a tar archive (torch's pre-1.0 tar format, or not a checkpoint: not supported)"
        case .text: return "a text file, not a checkpoint"
        case .onnx: return "an ONNX model"
        case .unknown: return "an unrecognised file"
        }
    }
}

extension Checkpoint {
    /// Opens `map` by what its bytes are: nil for safetensors (and bytes that look like nothing, so
    /// damaged safetensors keeps its precise error), a torch file through the pickle reader, and an
    /// error naming any other format.
    static func openSniffed(_ map: MappedFile, name: String) throws -> Checkpoint? {
        let kind = SniffedFormat(prefix: map.bytes.prefix(SniffedFormat.prefixLength))
        switch kind {
        case .unknown where [".ckpt", ".pt", ".pth", ".bin"].contains(where: name.lowercased().hasSuffix):
            throw TensorFormatError(.wrongFormat, "named like a PyTorch file, but neither a zip nor a pickle (first bytes \(map.bytes.prefix(4).map { hex($0) }.joined(separator: " ")))", file: name)
        case .safetensors, .unknown, .hdf5, .zstd:
            return nil
        case .zip:
            return try openTorch(map, name: name, zip: true)
        case .pickle(legacyTorch: true):
            return try openTorch(map, name: name, zip: false)
        case .pickle(legacyTorch: false):
            // torch's legacy format at another pickle protocol starts with the magic number too, one
            // opcode later; any other pickle is not a torch.save file, but its globals are refused by name.
            var unpickler = TorchUnpickler()
            let first: PickleValue
            do { first = try unpickler.load(map.bytes).value } catch { throw error.inFile(name) }
            if first == .bigInt(torchLegacyMagic) { return try openTorch(map, name: name, zip: false) }
            throw TensorFormatError(.wrongFormat, "\(kind.description) without torch's storages, not a torch.save file", file: name)
        case .onnx:
            return try openONNX(map, name: name, folder: name == "-" ? nil : (name as NSString).deletingLastPathComponent)
        case .gguf, .numpy, .tar, .text:
            throw TensorFormatError(.wrongFormat, "\(kind.description), not safetensors or a PyTorch file", file: name)
        }
    }

    /// The error for a stream whose safetensors header failed: the format its first bytes name, when
    /// they name one.
    static func explainStreamFailure(_ error: TensorFormatError, prefix: [UInt8], name: String) -> TensorFormatError {
        let kind = SniffedFormat(prefix: prefix)
        switch kind {
        case .safetensors, .unknown: return error
        case .zip, .pickle: return TensorFormatError(.wrongFormat, "\(kind.description) on a stream: PyTorch files are read from files", file: name)
        case .onnx: return TensorFormatError(.wrongFormat, "\(kind.description) on a stream: ONNX models are read from files", file: name)
        default: return TensorFormatError(.wrongFormat, "\(kind.description), not safetensors", file: name)
        }
    }
}

extension ErrorCode {
    /// The input is another format than the one it was read as (formats/pickle.md).
    public static let wrongFormat = ErrorCode(rawValue: "wrong-format")
}
