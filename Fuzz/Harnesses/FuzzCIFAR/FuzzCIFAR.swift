import Datasets
import FuzzSupport

/// CIFAR-10 and CIFAR-100 binary record files, and a class-name (meta) file, all from the input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCIFAR(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let path = FuzzInput.write(FuzzInput.bytes(data, size), name: "input-cifar.bin")
    if let d = try? CIFAR10.read(paths: [path]) {
        precondition(d.labels.allSatisfy { (0..<10).contains($0) }, "CIFAR-10 label out of range")
    }
    for kind in CIFAR100.LabelKind.allCases {
        if let d = try? CIFAR100.read(paths: [path], labelKind: kind) {
            precondition(d.labels.allSatisfy { (0..<d.classCount).contains($0) }, "CIFAR-100 label out of range")
        }
    }
    // The same bytes as a batches.meta.txt next to a valid one-record file.
    let record = [UInt8](repeating: 0, count: CIFAR10.recordBytes)
    let one = FuzzInput.write(record, name: "one-record.bin")
    if let d = try? CIFAR10.read(paths: [one], metaPath: path) {
        precondition(d.classNames.count == 10, "CIFAR-10 meta: \(d.classNames.count) names")
    }
    return 0
}
