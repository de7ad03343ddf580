import CPNG
import Foundation
import TensorFormats
import TensorMath

/// 8-bit PNG encoding through libpng's simplified API (`png_image_write_to_memory`), the only place
/// dmsurgery touches libpng.
public enum PNGImage {
    /// An image libpng cannot encode or decode, or a grid of images that are not gray or RGB.
    public typealias Failure = ModuleError<PNGErrors>

    /// The tag of PNG coding errors.
    public enum PNGErrors: ErrorModule {}

    /// Encodes `pixels` (row-major, `channels` bytes per pixel: 1 gray, 3 RGB) as PNG bytes.
    public static func encode(width: Int, height: Int, channels: Int, pixels: [UInt8]) throws -> [UInt8] {
        precondition(pixels.count == width * height * channels, "pixel buffer size")
        // png_image must start zeroed (libpng's rule); Swift imports no zero initializer for it.
        let image = UnsafeMutablePointer<png_image>.allocate(capacity: 1)
        defer { image.deallocate() }
        UnsafeMutableRawPointer(image).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<png_image>.size)
        image.pointee.version = UInt32(PNG_IMAGE_VERSION)
        image.pointee.width = UInt32(width)
        image.pointee.height = UInt32(height)
        image.pointee.format = channels == 1 ? UInt32(PNG_FORMAT_GRAY) : UInt32(PNG_FORMAT_RGB)
        var size = 0
        // First call measures, second writes (libpng's documented two-pass use of write_to_memory).
        let measured = pixels.withUnsafeBytes { p in
            png_image_write_to_memory(image, nil, &size, 0, p.baseAddress, Int32(width * channels), nil)
        }
        guard measured != 0 else { throw Failure(.pngEncode, "libpng: \(message(image.pointee))") }
        var out = [UInt8](repeating: 0, count: size)
        let written = out.withUnsafeMutableBytes { o in
            pixels.withUnsafeBytes { p in
                png_image_write_to_memory(image, o.baseAddress, &size, 0, p.baseAddress, Int32(width * channels), nil)
            }
        }
        guard written != 0 else { throw Failure(.pngEncode, "libpng: \(message(image.pointee))") }
        png_image_free(image)
        return Array(out.prefix(size))
    }

    static func message(_ image: png_image) -> String {
        var m = image.message
        return withUnsafeBytes(of: &m) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// Tiles images [N, C, H, W] with values in [-1, 1] into a grid `columns` wide (1-pixel gaps) and
    /// returns its PNG bytes; `scale` repeats each pixel so tiny images stay legible.
    public static func grid(_ images: Tensor, columns: Int, scale: Int = 1) throws -> [UInt8] {
        let (n, c) = (images.shape[0], images.shape[1])
        guard let h = MemoryBudget.product([images.shape[2], scale]), let w = MemoryBudget.product([images.shape[3], scale]) else {
            throw TensorFormatError(.tooLarge, "a grid scaled \(scale) times overflows; lower --grid-scale")
        }
        guard c == 1 || c == 3 else { throw Failure(.pngEncode, "images have \(c) channels; PNG grids need 1 or 3") }
        let cols = max(1, min(columns, n)), rows = (n + cols - 1) / cols
        try MemoryBudget.check(MemoryBudget.product([cols, w + 1, rows, h + 1, c]), for: "the PNG grid", option: "--grid-scale")
        let gw = cols * w + (cols - 1), gh = rows * h + (rows - 1)
        var pixels = [UInt8](repeating: 255, count: gw * gh * c)
        for i in 0..<n {
            let (r, col) = (i / cols, i % cols)
            for y in 0..<h {
                for x in 0..<w {
                    for ch in 0..<c {
                        let v = images.data[((i * c + ch) * images.shape[2] + y / scale) * images.shape[3] + x / scale]
                        let byte = UInt8(max(0, min(255, ((v + 1) / 2 * 255).rounded())))
                        pixels[((r * (h + 1) + y) * gw + col * (w + 1) + x) * c + ch] = byte
                    }
                }
            }
        }
        return try encode(width: gw, height: gh, channels: c, pixels: pixels)
    }
}

extension ErrorCode {
    /// A PNG that could not be encoded (engine-io.md).
    public static let pngEncode = ErrorCode(rawValue: "png-encode")
    public static let pngDecode = ErrorCode(rawValue: "png-decode")
}
