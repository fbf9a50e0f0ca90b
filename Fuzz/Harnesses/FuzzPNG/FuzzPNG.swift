import Datasets
import FuzzSupport

/// PNG decoding (libpng through the project's shim), as the image-folder reader and `umtrain
/// score` call it: the source's channels, then converted to 1 and 3. Chunk CRCs are recomputed
/// first (as far as the chunk layout can be walked), so that mutated headers and sizes reach
/// the decoder instead of stopping at libpng's CRC check.
/// A smaller pixel limit than the default (2048 x 2048): an input of a few hundred bytes may
/// declare up to the limit, and decoding that many pixels under ASan takes seconds per input.
let maximumPixels = 1 << 22

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPNG(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = withChunkCRCsFixed(FuzzInput.bytes(data, size))
    guard let image = try? ImageDecoder.decode(bytes, path: "input", maximumPixels: maximumPixels) else { return 0 }
    precondition(image.pixels.count == image.channels * image.height * image.width, "decoded size")
    precondition(image.channels == 1 || image.channels == 3, "decoded channels \(image.channels)")
    let other = image.channels == 1 ? 3 : 1
    if let converted = try? ImageDecoder.decode(bytes, path: "input", channels: other, maximumPixels: maximumPixels) {
        precondition(converted.channels == other && converted.height == image.height && converted.width == image.width,
                     "converted image differs in shape")
    } else {
        preconditionFailure("decoding succeeded with the source's channels but failed with \(other)")
    }
    return 0
}

/// The PNG with every walkable chunk's CRC-32 recomputed over its type and data.
func withChunkCRCsFixed(_ input: [UInt8]) -> [UInt8] {
    var bytes = input
    var offset = 8
    while offset + 12 <= bytes.count {
        let length = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
        let end = offset + 12 + length
        guard end <= bytes.count else { break }
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes[(offset + 4) ..< (end - 4)] {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        crc ^= 0xFFFF_FFFF
        bytes[end - 4] = UInt8(crc >> 24)
        bytes[end - 3] = UInt8(crc >> 16 & 0xFF)
        bytes[end - 2] = UInt8(crc >> 8 & 0xFF)
        bytes[end - 1] = UInt8(crc & 0xFF)
        offset = end
    }
    return bytes
}
