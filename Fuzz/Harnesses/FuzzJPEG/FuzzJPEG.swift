import Datasets
import FuzzSupport

/// JPEG decoding (libjpeg-turbo through the project's shim), as the image-folder
/// reader and `umtrain score` call it: the source's channels, then converted to 1 and 3.
/// A smaller pixel limit than the default (2048 x 2048): an input of a few hundred bytes may
/// declare up to the limit, and decoding that many pixels under ASan takes seconds per input.
let maximumPixels = 1 << 22

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJPEG(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = FuzzInput.bytes(data, size)
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
