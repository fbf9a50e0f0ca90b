/// Readers for the binary versions of CIFAR-10 and CIFAR-100 (Krizhevsky, "Learning Multiple
/// Layers of Features from Tiny Images", 2009; https://www.cs.toronto.edu/~kriz/cifar.html).
///
/// Each file is a sequence of fixed-size records: CIFAR-10 `[label][3072 pixels]` (3073 bytes),
/// CIFAR-100 `[coarse label][fine label][3072 pixels]` (3074 bytes). The 3072 pixels are the
/// 32x32 red plane, then green, then blue, each row-major, which is exactly `[3, 32, 32]`, so the
/// readers return `[N, 3, 32, 32]` without reordering.
public enum CIFAR10 {
    /// Bytes per record: 1 label byte + 3 * 32 * 32 pixel bytes.
    public static let recordBytes = 3073
    /// The official class names (the contents of `batches.meta.txt`), index = label.
    public static let classNames = ["airplane", "automobile", "bird", "cat", "deer",
                                    "dog", "frog", "horse", "ship", "truck"]
    /// Training files in id order: ids 0..<10000 come from `data_batch_1.bin`, and so on.
    public static let trainFiles = (1...5).map { "data_batch_\($0).bin" }
    public static let testFiles = ["test_batch.bin"]

    /// Reads CIFAR-10 record files as one dataset. Ids number the records across `paths` in the
    /// order given (record k of the i-th file has id `sum of earlier files' records + k`).
    /// Class names come from `metaPath` (one name per non-empty line, as `batches.meta.txt`)
    /// when given, otherwise the official names.
    /// - Throws: `DatasetError.partialRecord`, `.labelOutOfRange` (label >= 10, naming the record),
    ///   `.classNameCount`, and the `FileBytes.load` errors.
    public static func read(paths: [String], metaPath: String? = nil) throws -> ImageDataset {
        let names = try metaPath.map { try readClassNames(path: $0, expected: 10) } ?? classNames
        var images = [UInt8]()
        var labels = [Int]()
        for path in paths {
            let bytes = try FileBytes.load(path)
            try CIFARRecords.decode(bytes, path: path, labelBytes: 1,
                                    labelLimits: [("class", 10)], keptLabel: 0,
                                    images: &images, labels: &labels)
        }
        return ImageDataset(images: images, labels: labels, channels: 3, height: 32, width: 32,
                            classCount: 10, classNames: names)
    }

    /// Loads `split` from a `cifar-10-batches-bin` directory (`data_batch_1.bin` ... `data_batch_5.bin`
    /// for train, `test_batch.bin` for test; `batches.meta.txt` for the names if present).
    /// Returns `[N, 3, 32, 32]`, N = 50,000 / 10,000 for the official files.
    /// - Throws: `DatasetError.missingFile` and the `read(paths:metaPath:)` errors.
    public static func load(directory: String, split: DatasetSplit) throws -> ImageDataset {
        let files = (split == .train ? trainFiles : testFiles).map { joinPath(directory, $0) }
        for file in files where !FileBytes.exists(file) {
            throw DatasetError.missingFile(path: file, hint: "point the data directory at the extracted "
                + "cifar-10-batches-bin folder of the binary version (cifar-10-binary.tar.gz).")
        }
        let meta = joinPath(directory, "batches.meta.txt")
        return try read(paths: files, metaPath: FileBytes.exists(meta) ? meta : nil)
    }
}

public enum CIFAR100 {
    /// Bytes per record: coarse label byte, fine label byte, 3 * 32 * 32 pixel bytes.
    public static let recordBytes = 3074
    /// Number of fine classes (labels 0..<100) and coarse superclasses (labels 0..<20).
    public static let fineClassCount = 100
    public static let coarseClassCount = 20

    /// Which label of a CIFAR-100 record becomes `ImageDataset.labels`.
    public enum LabelKind: String, Sendable, CaseIterable {
        /// The 100 classes (second byte of a record).
        case fine
        /// The 20 superclasses (first byte of a record).
        case coarse
    }

    /// Reads CIFAR-100 record files as one dataset (ids as in `CIFAR10.read`). Both labels of
    /// every record are checked (coarse < 20, fine < 100) whichever is kept.
    /// - Parameter namesPath: optional `fine_label_names.txt` / `coarse_label_names.txt` matching `labelKind`.
    /// - Throws: `DatasetError.partialRecord`, `.labelOutOfRange`, `.classNameCount`, `FileBytes.load` errors.
    public static func read(paths: [String], labelKind: LabelKind = .fine,
                            namesPath: String? = nil) throws -> ImageDataset {
        let classCount = labelKind == .fine ? fineClassCount : coarseClassCount
        let names = try namesPath.map { try readClassNames(path: $0, expected: classCount) } ?? []
        var images = [UInt8]()
        var labels = [Int]()
        for path in paths {
            let bytes = try FileBytes.load(path)
            try CIFARRecords.decode(bytes, path: path, labelBytes: 2,
                                    labelLimits: [("coarse", coarseClassCount), ("fine", fineClassCount)],
                                    keptLabel: labelKind == .coarse ? 0 : 1,
                                    images: &images, labels: &labels)
        }
        return ImageDataset(images: images, labels: labels, channels: 3, height: 32, width: 32,
                            classCount: classCount, classNames: names)
    }

    /// Loads `split` from a `cifar-100-binary` directory (`train.bin`, `test.bin`; names from
    /// `fine_label_names.txt` or `coarse_label_names.txt` if present).
    /// Returns `[N, 3, 32, 32]`, N = 50,000 / 10,000 for the official files.
    public static func load(directory: String, split: DatasetSplit, labelKind: LabelKind = .fine) throws -> ImageDataset {
        let file = joinPath(directory, split == .train ? "train.bin" : "test.bin")
        if !FileBytes.exists(file) {
            throw DatasetError.missingFile(path: file, hint: "point the data directory at the extracted "
                + "cifar-100-binary folder of the binary version (cifar-100-binary.tar.gz).")
        }
        let names = joinPath(directory, labelKind == .fine ? "fine_label_names.txt" : "coarse_label_names.txt")
        return try read(paths: [file], labelKind: labelKind, namesPath: FileBytes.exists(names) ? names : nil)
    }
}

enum CIFARRecords {
    /// Appends the records of one file. `labelLimits[i]` is (name, classCount) of label byte i;
    /// `keptLabel` is the index of the label byte stored in `labels`.
    static func decode(_ bytes: [UInt8], path: String, labelBytes: Int, labelLimits: [(String, Int)],
                       keptLabel: Int, images: inout [UInt8], labels: inout [Int]) throws {
        let pixelBytes = 3 * 32 * 32
        let record = labelBytes + pixelBytes
        if bytes.count % record != 0 || bytes.isEmpty {
            throw DatasetError.partialRecord(path: path, fileBytes: bytes.count, recordBytes: record)
        }
        let count = bytes.count / record
        let imageStart = images.count
        images.append(contentsOf: repeatElement(0, count: count * pixelBytes))
        labels.reserveCapacity(labels.count + count)
        try bytes.withUnsafeBufferPointer { src in
            try images.withUnsafeMutableBufferPointer { dst in
                for r in 0..<count {
                    let base = r * record
                    for (i, (name, limit)) in labelLimits.enumerated() where Int(src[base + i]) >= limit {
                        throw DatasetError.labelOutOfRange(path: path, record: r, field: name,
                                                           label: Int(src[base + i]), classCount: limit)
                    }
                    labels.append(Int(src[base + keptLabel]))
                    let from = UnsafeBufferPointer(rebasing: src[base + labelBytes ..< base + record])
                    let to = imageStart + r * pixelBytes
                    _ = UnsafeMutableBufferPointer(rebasing: dst[to ..< to + pixelBytes]).initialize(from: from)
                }
            }
        }
    }
}

/// Reads a class-name file: one name per line, blank lines and surrounding spaces ignored.
/// - Throws: `DatasetError.classNameCount` when it does not hold `expected` names.
func readClassNames(path: String, expected: Int) throws -> [String] {
    let bytes = try FileBytes.load(path)
    let text = String(decoding: bytes, as: UTF8.self)
    let names = text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
        .map { $0.trimmedSpaces() }
        .filter { !$0.isEmpty }
    if names.count != expected {
        throw DatasetError.classNameCount(path: path, expected: expected, found: names.count)
    }
    return names
}

extension Substring {
    func trimmedSpaces() -> String {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
