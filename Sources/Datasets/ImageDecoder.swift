import CJPEG
import CPNG
#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A decoded image: `pixels` is `[channels, height, width]` row-major (planar, CHW), one byte
/// per sample, 0...255.
public struct DecodedImage: Sendable, Equatable {
    public var pixels: [UInt8]
    public var channels: Int
    public var height: Int
    public var width: Int

    /// - Precondition: `pixels.count == channels * height * width`, all sizes > 0.
    public init(pixels: [UInt8], channels: Int, height: Int, width: Int) {
        precondition(channels > 0 && height > 0 && width > 0,
                     "DecodedImage: sizes must be > 0, got [C=\(channels), H=\(height), W=\(width)]")
        precondition(pixels.count == channels * height * width,
                     "DecodedImage: \(pixels.count) bytes for [C=\(channels), H=\(height), W=\(width)] = \(channels * height * width)")
        self.pixels = pixels
        self.channels = channels
        self.height = height
        self.width = width
    }
}

/// The container formats the decoder reads, detected from the first bytes (never the extension).
public enum ImageFormat: String, Sendable {
    case jpeg = "JPEG"
    case png = "PNG"

    /// JPEG: `FF D8 FF` (SOI + the first marker). PNG: the 8-byte signature
    /// `89 50 4E 47 0D 0A 1A 0A`. Returns nil for anything else.
    public static func detect(_ bytes: UnsafeRawBufferPointer) -> ImageFormat? {
        if bytes.count >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF { return .jpeg }
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        if bytes.count >= 8 && (0..<8).allSatisfy({ bytes[$0] == png[$0] }) { return .png }
        return nil
    }
}

/// Decodes JPEG (libjpeg-turbo) and PNG (libpng 1.6, simplified API) into planar bytes, and
/// converts channels as PIL's `Image.convert` does.
///
/// Channel handling (`channels` argument):
/// - `nil`: keep the source's colour type (1 channel for grayscale files, 3 for colour; alpha is
///   dropped).
/// - `1`: colour sources are converted to luma with PIL's "L" conversion (ITU-R 601-2:
///   `L = R*299/1000 + G*587/1000 + B*114/1000`, computed as PIL does in 16.16 fixed point,
///   `(19595 R + 38470 G + 7471 B + 32768) >> 16`, i.e. rounded to nearest).
/// - `3`: grayscale sources are replicated into R = G = B (PIL's `convert("RGB")`).
/// Alpha is dropped without compositing (as PIL's `convert("RGB")` / `convert("L")` from RGBA).
/// 16-bit PNGs keep the high byte of each sample (PIL does so for 16-bit RGB; for 16-bit gray,
/// PIL's "I;16" -> "L" clips at 255 instead, which is not followed). gAMA, cHRM and iCCP
/// chunks are ignored, as PIL ignores them (libpng would otherwise apply them).
/// JPEGs are decoded with libjpeg's defaults (ISLOW IDCT, fancy upsampling), as PIL does, to RGB
/// before any luma conversion (so a colour JPEG read as grayscale equals PIL's
/// `Image.open(f).convert("L")`, not libjpeg's raw Y plane).
/// Corrupt-data warnings from libjpeg (e.g. a truncated file) are errors, like PIL's
/// "image file is truncated".
public enum ImageDecoder {
    /// Largest image decoded by default, in pixels (width x height): PIL's decompression-bomb
    /// limit (`Image.MAX_IMAGE_PIXELS` = 89,478,485, an error above twice that). A JPEG or PNG
    /// header can declare up to 65535 x 65535 (JPEG) or 2^31 x 2^31 (PNG) pixels in a few hundred
    /// bytes; the size is checked before any pixel buffer is allocated.
    public static let defaultMaximumPixels = 178_956_970

    /// Reads and decodes the file at `path`.
    /// - Throws: `DatasetError.cannotRead` (open/read), `ImageFileError.notAnImage` (signature),
    ///   `.corruptImage` (decoder error), `.unsupportedImage` (formats the libraries cannot convert). CMYK/YCCK JPEGs are converted to
    ///   RGB as Pillow does; libjpeg warnings other than a truncated file are ignored, as Pillow does.
    ///   Images of more than `maximumPixels` pixels are `.unsupportedImage`.
    public static func decodeFile(_ path: String, channels: Int? = nil,
                                  maximumPixels: Int = defaultMaximumPixels) throws -> DecodedImage {
        let bytes = try readWholeFile(path)
        return try decode(bytes, path: path, channels: channels, maximumPixels: maximumPixels)
    }

    /// Decodes an in-memory JPEG or PNG file. `path` is only used in error messages.
    /// - Precondition: `channels` is nil, 1 or 3.
    /// - Throws: as `decodeFile`, except `cannotRead`.
    public static func decode(_ bytes: [UInt8], path: String, channels: Int? = nil,
                              maximumPixels: Int = defaultMaximumPixels) throws -> DecodedImage {
        precondition(channels == nil || channels == 1 || channels == 3,
                     "ImageDecoder.decode: channels must be nil, 1 or 3, got \(channels!)")
        precondition(maximumPixels > 0, "ImageDecoder.decode: maximumPixels must be > 0, got \(maximumPixels)")
        return try bytes.withUnsafeBytes { raw in
            switch ImageFormat.detect(raw) {
            case .jpeg?:
                return try decodeJPEG(raw, path: path, channels: channels, maximumPixels: maximumPixels)
            case .png?:
                if let plain = withoutColourSpaceChunks(raw) {
                    return try plain.withUnsafeBytes {
                        try decodePNG($0, path: path, channels: channels, maximumPixels: maximumPixels)
                    }
                }
                return try decodePNG(raw, path: path, channels: channels, maximumPixels: maximumPixels)
            case nil:
                throw ImageFileError.notAnImage(path: path, found: describeHead(ArraySlice(raw.prefix(8))))
            }
        }
    }

    /// PNG chunks that make libpng's simplified API transform the samples (gamma, chromaticities,
    /// an ICC profile). PIL ignores them and returns the stored samples.
    static let colourSpaceChunks: Set<String> = ["gAMA", "cHRM", "iCCP"]

    /// The PNG without its gAMA/cHRM/iCCP chunks, or nil when it has none (or its chunk layout
    /// cannot be walked, which the decoder then reports). Other chunks, and their CRCs, are kept
    /// byte for byte.
    static func withoutColourSpaceChunks(_ raw: UnsafeRawBufferPointer) -> [UInt8]? {
        var offset = 8
        var keep: [Range<Int>] = [0 ..< 8]
        var dropped = false
        while offset + 12 <= raw.count {
            let length = Int(raw[offset]) << 24 | Int(raw[offset + 1]) << 16 | Int(raw[offset + 2]) << 8 | Int(raw[offset + 3])
            let end = offset + 12 + length
            guard end <= raw.count else { return nil }
            let type = String(decoding: raw[offset + 4 ..< offset + 8], as: UTF8.self)
            if colourSpaceChunks.contains(type) { dropped = true } else { keep.append(offset ..< end) }
            offset = end
            if type == "IEND" { break }
        }
        guard dropped else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        for r in keep { out.append(contentsOf: raw[r]) }
        if offset < raw.count { out.append(contentsOf: raw[offset...]) }
        return out
    }

    /// Reads the first 8 bytes of `path` and checks for the JPEG or PNG signature.
    /// - Throws: `DatasetError.cannotRead`, `ImageFileError.notAnImage`.
    public static func checkSignature(_ path: String) throws {
        let file = try InputFile(path: path)
        defer { file.close() }
        var head = [UInt8](repeating: 0, count: 8)
        let got = try head.withUnsafeMutableBytes { try file.read(into: $0) }
        let format = head.withUnsafeBytes { ImageFormat.detect(UnsafeRawBufferPointer(rebasing: $0[0..<got])) }
        if format == nil { throw ImageFileError.notAnImage(path: path, found: describeHead(head[0..<got])) }
    }

    static func describeHead(_ head: ArraySlice<UInt8>) -> String {
        let hex = head.prefix(8).map { b -> String in
            let s = String(b, radix: 16, uppercase: true)
            return s.count == 1 ? "0" + s : s
        }
        return hex.isEmpty ? "an empty file" : "bytes " + hex.joined(separator: " ")
    }

    /// The whole file as bytes (no gzip inflation: an image file is taken as is).
    static func readWholeFile(_ path: String) throws -> [UInt8] {
        let file = try InputFile(path: path)
        defer { file.close() }
        var bytes = [UInt8](repeating: 0, count: file.size)
        let got = try bytes.withUnsafeMutableBytes { try file.read(into: $0) }
        if got < bytes.count { bytes.removeLast(bytes.count - got) }
        return bytes
    }

    /// The error for an image whose header declares more than `maximumPixels` pixels.
    static func tooLarge(path: String, format: String, width: Int, height: Int, maximumPixels: Int) -> ImageFileError {
        .unsupportedImage(path: path, format: format,
                          reason: "size \(width)x\(height) = \(width * height) pixels is above the limit of \(maximumPixels) pixels "
                            + "(a decompression bomb, or a damaged header)")
    }

    private static func decodeJPEG(_ raw: UnsafeRawBufferPointer, path: String, channels: Int?,
                                   maximumPixels: Int) throws -> DecodedImage {
        var pixels: UnsafeMutablePointer<UInt8>?
        var width: Int32 = 0, height: Int32 = 0, sourceChannels: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = message.withUnsafeMutableBufferPointer { msg in
            umjpeg_decode(raw.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt(raw.count),
                          &pixels, &width, &height, &sourceChannels, UInt64(maximumPixels), msg.baseAddress, msg.count)
        }
        if status == -2 {
            throw tooLarge(path: path, format: "JPEG", width: Int(width), height: Int(height), maximumPixels: maximumPixels)
        }
        guard status == 0, let data = pixels else {
            let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw ImageFileError.corruptImage(path: path, format: "JPEG", message: text)
        }
        defer { free(data) }
        let interleaved = UnsafeBufferPointer(start: data, count: Int(width) * Int(height) * Int(sourceChannels))
        return planar(interleaved, sourceChannels: Int(sourceChannels), dropAlpha: false,
                      height: Int(height), width: Int(width), channels: channels)
    }

    private static func decodePNG(_ raw: UnsafeRawBufferPointer, path: String, channels: Int?,
                                  maximumPixels: Int) throws -> DecodedImage {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        func failure(_ image: inout png_image) -> ImageFileError {
            let text = withUnsafeBytes(of: &image.message) { bytes -> String in
                let chars = bytes.bindMemory(to: CChar.self)
                return String(cString: chars.baseAddress!)
            }
            png_image_free(&image)
            return .corruptImage(path: path, format: "PNG", message: text.isEmpty ? "libpng error" : text)
        }
        guard png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count) != 0 else {
            throw failure(&image)
        }
        let isColor = image.format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0
        let hasAlpha = image.format & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0
        // Request 8-bit samples in the source's colour type (keeping alpha so that libpng does not
        // composite it; it is dropped below, as PIL's convert does).
        var sourceChannels = isColor ? 3 : 1
        if hasAlpha { sourceChannels += 1 }
        image.format = (isColor ? UInt32(PNG_FORMAT_RGB) : UInt32(PNG_FORMAT_GRAY)) | (hasAlpha ? UInt32(PNG_FORMAT_FLAG_ALPHA) : 0)
        let width = Int(image.width), height = Int(image.height)
        guard width > 0, height > 0, width <= 1 << 16, height <= 1 << 16 else {
            png_image_free(&image)
            throw ImageFileError.unsupportedImage(path: path, format: "PNG",
                                                  reason: "size \(width)x\(height) is outside 1...65536 per side")
        }
        if width * height > maximumPixels {
            png_image_free(&image)
            throw tooLarge(path: path, format: "PNG", width: width, height: height, maximumPixels: maximumPixels)
        }
        // Bit depth from the IHDR chunk (signature 8 + length 4 + type 4 + width 4 + height 4 bytes).
        let sixteenBit = raw.count > 24 && raw[24] == 16
        var buffer = [UInt8](repeating: 0, count: width * height * sourceChannels)
        if sixteenBit {
            // 16-bit file: read the 16-bit samples (libpng's linear format, which for a file
            // without gAMA/sRGB/iCCP chunks is the stored values; alpha comes premultiplied and is
            // divided out here) and keep the high byte, as PIL does for 16-bit RGB. Without this,
            // libpng's 8-bit output would apply an sRGB encoding curve to the values.
            image.format |= UInt32(PNG_FORMAT_FLAG_LINEAR)
            var wide = [UInt16](repeating: 0, count: width * height * sourceChannels)
            let ok = wide.withUnsafeMutableBytes { out in
                png_image_finish_read(&image, nil, out.baseAddress, Int32(width * sourceChannels), nil)
            }
            guard ok != 0 else { throw failure(&image) }
            wide.withUnsafeBufferPointer { src in
                buffer.withUnsafeMutableBufferPointer { dst in
                    let colors = hasAlpha ? sourceChannels - 1 : sourceChannels
                    for px in 0..<(width * height) {
                        let base = px * sourceChannels
                        let alpha = hasAlpha ? UInt32(src[base + colors]) : 65535
                        for k in 0..<colors {
                            var v = UInt32(src[base + k])
                            if hasAlpha {
                                v = alpha == 0 ? 0 : min(65535, (v * 65535 + alpha / 2) / alpha)
                            }
                            dst[base + k] = UInt8(truncatingIfNeeded: v >> 8)
                        }
                        if hasAlpha { dst[base + colors] = UInt8(truncatingIfNeeded: alpha >> 8) }
                    }
                }
            }
        } else {
            let ok = buffer.withUnsafeMutableBytes { out in
                png_image_finish_read(&image, nil, out.baseAddress, Int32(width * sourceChannels), nil)
            }
            guard ok != 0 else { throw failure(&image) }
        }
        png_image_free(&image)
        return buffer.withUnsafeBufferPointer { interleaved in
            planar(interleaved, sourceChannels: sourceChannels, dropAlpha: hasAlpha,
                   height: height, width: width, channels: channels)
        }
    }

    /// Interleaved `[H, W, sourceChannels]` (1 = Y, 2 = YA, 3 = RGB, 4 = RGBA) to planar
    /// `[C, H, W]` with the channel conversion described on the type.
    static func planar(_ source: UnsafeBufferPointer<UInt8>, sourceChannels: Int, dropAlpha: Bool,
                       height: Int, width: Int, channels requested: Int?) -> DecodedImage {
        let colorChannels = dropAlpha ? sourceChannels - 1 : sourceChannels
        let outChannels = requested ?? colorChannels
        let plane = height * width
        var out = [UInt8](repeating: 0, count: outChannels * plane)
        out.withUnsafeMutableBufferPointer { dst in
            let step = sourceChannels
            if colorChannels == 1 {
                for i in 0..<plane { dst[i] = source[i * step] }
                for c in 1..<max(outChannels, 1) {
                    for i in 0..<plane { dst[c * plane + i] = dst[i] }
                }
            } else if outChannels == 3 {
                for i in 0..<plane {
                    let s = i * step
                    dst[i] = source[s]
                    dst[plane + i] = source[s + 1]
                    dst[2 * plane + i] = source[s + 2]
                }
            } else {
                for i in 0..<plane {
                    let s = i * step
                    dst[i] = Luma.pil(source[s], source[s + 1], source[s + 2])
                }
            }
        }
        return DecodedImage(pixels: out, channels: outChannels, height: height, width: width)
    }
}

/// Colour conversions matching PIL.
public enum Luma {
    /// PIL's RGB -> "L" conversion (ITU-R 601-2 luma), `(19595 R + 38470 G + 7471 B + 32768) >> 16`:
    /// `R*299/1000 + G*587/1000 + B*114/1000` rounded to nearest.
    @inline(__always)
    public static func pil(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
        UInt8(truncatingIfNeeded: (UInt32(r) &* 19595 &+ UInt32(g) &* 38470 &+ UInt32(b) &* 7471 &+ 0x8000) >> 16)
    }

    /// Converts a planar image to `channels` (1 or 3): RGB -> L with `pil`, L -> RGB by
    /// replication; returns the input unchanged when it already has that many channels.
    public static func convert(_ image: DecodedImage, channels: Int) -> DecodedImage {
        precondition(channels == 1 || channels == 3, "Luma.convert: channels must be 1 or 3, got \(channels)")
        precondition(image.channels == 1 || image.channels == 3, "Luma.convert: image has \(image.channels) channels, expected 1 or 3")
        if image.channels == channels { return image }
        let plane = image.height * image.width
        var out = [UInt8](repeating: 0, count: channels * plane)
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                if channels == 3 {
                    for c in 0..<3 { for i in 0..<plane { dst[c * plane + i] = src[i] } }
                } else {
                    for i in 0..<plane { dst[i] = pil(src[i], src[plane + i], src[2 * plane + i]) }
                }
            }
        }
        return DecodedImage(pixels: out, channels: channels, height: image.height, width: image.width)
    }
}

/// Writes PNG (libpng simplified API) and JPEG (libjpeg-turbo) files from planar bytes: for
/// tests, fixtures and generated OOD sets.
public enum ImageEncoder {
    /// PNG file bytes of `image` (1 channel: 8-bit gray; 3 channels: 8-bit RGB), lossless.
    /// - Throws: `ImageFileError.corruptImage` with libpng's message if encoding fails.
    public static func png(_ image: DecodedImage) throws -> [UInt8] {
        precondition(image.channels == 1 || image.channels == 3, "ImageEncoder.png: channels must be 1 or 3, got \(image.channels)")
        let interleaved = interleave(image)
        var png = png_image()
        png.version = UInt32(PNG_IMAGE_VERSION)
        png.width = UInt32(image.width)
        png.height = UInt32(image.height)
        png.format = image.channels == 1 ? UInt32(PNG_FORMAT_GRAY) : UInt32(PNG_FORMAT_RGB)
        let stride = Int32(image.width * image.channels)
        var size: Int = 0
        // First call with a nil buffer asks for the size.
        let sized = interleaved.withUnsafeBytes { px in
            png_image_write_to_memory(&png, nil, &size, 0, px.baseAddress, stride, nil)
        }
        guard sized != 0 else { throw encodeFailure(&png) }
        var out = [UInt8](repeating: 0, count: size)
        let ok = interleaved.withUnsafeBytes { px in
            out.withUnsafeMutableBytes { o in
                png_image_write_to_memory(&png, o.baseAddress, &size, 0, px.baseAddress, stride, nil)
            }
        }
        guard ok != 0 else { throw encodeFailure(&png) }
        png_image_free(&png)
        return Array(out.prefix(size))
    }

    /// Baseline JPEG file bytes of `image` (1 or 3 channels) at `quality` (1...100; 4:2:0 chroma
    /// subsampling for colour, libjpeg's default).
    public static func jpeg(_ image: DecodedImage, quality: Int = 90) throws -> [UInt8] {
        precondition(image.channels == 1 || image.channels == 3, "ImageEncoder.jpeg: channels must be 1 or 3, got \(image.channels)")
        precondition((1...100).contains(quality), "ImageEncoder.jpeg: quality must be in 1...100, got \(quality)")
        let interleaved = interleave(image)
        var output: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = interleaved.withUnsafeBufferPointer { px in
            message.withUnsafeMutableBufferPointer { msg in
                umjpeg_encode(px.baseAddress, Int32(image.width), Int32(image.height), Int32(image.channels),
                              Int32(quality), &output, &size, msg.baseAddress, msg.count)
            }
        }
        guard status == 0, let data = output else {
            let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw ImageFileError.corruptImage(path: "<memory>", format: "JPEG", message: "encoding failed: \(text)")
        }
        defer { free(data) }
        return Array(UnsafeBufferPointer(start: data, count: Int(size)))
    }

    private static func encodeFailure(_ png: inout png_image) -> ImageFileError {
        let text = withUnsafeBytes(of: &png.message) { bytes in
            String(cString: bytes.bindMemory(to: CChar.self).baseAddress!)
        }
        png_image_free(&png)
        return .corruptImage(path: "<memory>", format: "PNG", message: "encoding failed: \(text)")
    }

    private static func interleave(_ image: DecodedImage) -> [UInt8] {
        let plane = image.height * image.width, c = image.channels
        var out = [UInt8](repeating: 0, count: image.pixels.count)
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for ch in 0..<c { for i in 0..<plane { dst[i * c + ch] = src[ch * plane + i] } }
            }
        }
        return out
    }
}
