import Datasets
import FuzzSupport

/// Images as CSV lines (mnist_5k.csv / digits.csv layout), with the two settings the project
/// uses: 2x2 pixels 0...255 with the label last, and 2x2 pixels 0...16 with the label first and
/// a header line.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCSVImages(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let path = FuzzInput.write(FuzzInput.bytes(data, size), name: "input-images.csv")
    if let d = try? CSVImages.read(path: path, height: 2, width: 2, classCount: 10) {
        precondition(d.labels.allSatisfy { (0..<10).contains($0) }, "CSV label out of range")
    }
    if let d = try? CSVImages.read(path: path, height: 2, width: 2, labelColumn: .first, maxValue: 16,
                                   classCount: 10, hasHeader: true) {
        precondition(d.labels.allSatisfy { (0..<10).contains($0) }, "CSV label out of range")
    }
    return 0
}
