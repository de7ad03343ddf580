import CPNG
import Foundation
import TensorFormats
import TensorMath

extension PNGImage {
    /// Images larger than this many pixels are refused before libpng allocates their buffer.
    static let maximumPixels = 64 << 20

    /// Decodes PNG bytes (any bit depth, palette, gray or alpha: libpng converts) to RGB and returns
    /// [1, 3, H, W] in [-1, 1] (byte / 127.5 - 1, diffusers' `VaeImageProcessor` normalisation).
    public static func decode(_ bytes: [UInt8], file: String) throws -> Tensor {
        let image = UnsafeMutablePointer<png_image>.allocate(capacity: 1)
        defer { image.deallocate() }
        UnsafeMutableRawPointer(image).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<png_image>.size)
        image.pointee.version = UInt32(PNG_IMAGE_VERSION)
        let begun = bytes.withUnsafeBytes { png_image_begin_read_from_memory(image, $0.baseAddress, $0.count) }
        guard begun != 0 else { throw Failure(.pngDecode, "libpng: \(message(image.pointee))", file: file) }
        defer { png_image_free(image) }
        let width = Int(image.pointee.width), height = Int(image.pointee.height)
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        guard width > 0, height > 0, !overflow, pixels <= maximumPixels else {
            throw Failure(.tooLarge, "\(width)x\(height) exceeds \(maximumPixels) pixels", file: file)
        }
        image.pointee.format = UInt32(PNG_FORMAT_RGB)
        var rgb = [UInt8](repeating: 0, count: pixels * 3)
        let finished = bytes.withUnsafeBytes { _ in
            rgb.withUnsafeMutableBytes { png_image_finish_read(image, nil, $0.baseAddress, Int32(width * 3), nil) }
        }
        guard finished != 0 else { throw Failure(.pngDecode, "libpng: \(message(image.pointee))", file: file) }
        return Tensor(uninitializedShape: [1, 3, height, width]) { out in
            for c in 0..<3 {
                for i in 0..<pixels { out[c * pixels + i] = Float(rgb[i * 3 + c]) / 127.5 - 1 }
            }
        }
    }
}
