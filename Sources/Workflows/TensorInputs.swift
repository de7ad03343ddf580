import CLIP
import Foundation
import TensorFormats
import TensorMath

/// `images` of a safetensors file, or one PNG file as [1, 3, H, W] in [-1, 1].
public func readImages(_ path: String, options: OpenOptions) throws -> Tensor {
    if path.lowercased().hasSuffix(".png") {
        return try PNGImage.decode(try MappedFile.contents(of: path), file: path)
    }
    if path.lowercased().hasSuffix(".jpg") || path.lowercased().hasSuffix(".jpeg") {
        throw TensorFormatError(.unsupported, "JPEG input is not supported; convert to PNG", file: path)
    }
    return try readTensor("images", from: path, options: options)
}

/// One float tensor of a checkpoint file, by name.
public func readTensor(_ name: String, from path: String, options: OpenOptions) throws -> Tensor {
    let checkpoint = try openCheckpoint(path, options, randomAccess: true).withRandomAccess()
    guard let entry = checkpoint.entry(named: name) else {
        throw TensorFormatError(.missingTensor, "no tensor '\(name)'", file: path, tensor: name)
    }
    return Tensor(shape: entry.shape, data: try checkpoint.floats(of: entry))
}
