import Datasets
import FuzzSupport

/// IDX (MNIST) image and label files, raw: the bytes are the file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDX(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let path = FuzzInput.write(FuzzInput.bytes(data, size), name: "input-idx")
    if let images = try? IDX.readImages(path: path) {
        precondition(images.pixels.count == images.count * images.rows * images.cols, "IDX images: pixel count")
    }
    _ = try? IDX.readLabels(path: path)
    if let labels = try? IDX.readLabels(path: path, classCount: 10) {
        precondition(labels.allSatisfy { (0..<10).contains($0) }, "IDX labels: out of range")
    }
    return 0
}
