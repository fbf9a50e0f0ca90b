import Datasets
import FuzzSupport

/// PNG decoding (libjpeg-turbo / libpng through the project's shims), as the image-folder
/// reader and `umtrain score` call it: the source's channels, then converted to 1 and 3.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPNG(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = FuzzInput.bytes(data, size)
    guard let image = try? ImageDecoder.decode(bytes, path: "input") else { return 0 }
    precondition(image.pixels.count == image.channels * image.height * image.width, "decoded size")
    precondition(image.channels == 1 || image.channels == 3, "decoded channels \(image.channels)")
    let other = image.channels == 1 ? 3 : 1
    if let converted = try? ImageDecoder.decode(bytes, path: "input", channels: other) {
        precondition(converted.channels == other && converted.height == image.height && converted.width == image.width,
                     "converted image differs in shape")
    } else {
        preconditionFailure("decoding succeeded with the source's channels but failed with \(other)")
    }
    return 0
}
