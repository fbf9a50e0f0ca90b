/// Reader for the IDX format of MNIST and Fashion-MNIST (LeCun et al., "THE MNIST DATABASE",
/// http://yann.lecun.com/exdb/mnist/), raw or gzip-compressed.
///
/// Layout: a 4-byte big-endian magic `0x0000TTDD` (TT = element type, 0x08 = unsigned byte;
/// DD = number of dimensions), then DD big-endian `UInt32` sizes, then the elements row-major.
/// Images: magic `0x00000803`, sizes [N, rows, cols]; labels: magic `0x00000801`, sizes [N].
/// Gzip is recognised by content (first bytes `0x1f 0x8b`), not by the file name.
public enum IDX {
    /// Magic number of an IDX file of unsigned-byte images, `[N, rows, cols]`.
    public static let imagesMagic: UInt32 = 0x0000_0803
    /// Magic number of an IDX file of unsigned-byte labels, `[N]`.
    public static let labelsMagic: UInt32 = 0x0000_0801

    /// Images read from an IDX file: `pixels` is `[count, rows, cols]` row-major.
    public struct Images: Sendable {
        public let count: Int
        public let rows: Int
        public let cols: Int
        public let pixels: [UInt8]
    }

    /// Reads an IDX image file (magic `0x00000803`).
    /// - Throws: `DatasetError.badMagic`, `.sizeMismatch` (short header, truncated or over-long
    ///   payload), `.badHeader` (a zero dimension, or sizes whose product overflows), and the
    ///   `FileBytes.load` errors.
    public static func readImages(path: String) throws -> Images {
        let bytes = try FileBytes.load(path)
        let dims = try parseHeader(bytes, path: path, magic: imagesMagic, what: "image")
        let (count, rows, cols) = (dims[0], dims[1], dims[2])
        if rows == 0 || cols == 0 {
            throw DatasetError.badHeader(path: path, field: "rows x cols", expected: "both > 0",
                                         found: "\(rows) x \(cols)")
        }
        let header = 16
        // Three 32-bit sizes can multiply past Int.max: an overflowing product cannot match any file.
        let (plane, o1) = rows.multipliedReportingOverflow(by: cols)
        let (total, o2) = count.multipliedReportingOverflow(by: plane)
        if o1 || o2 {
            throw DatasetError.badHeader(path: path, field: "count x rows x cols", expected: "a product below 2^63 bytes",
                                         found: "\(count) x \(rows) x \(cols)")
        }
        try checkPayload(bytes, path: path, header: header, expected: total)
        return Images(count: count, rows: rows, cols: cols, pixels: Array(bytes[header...]))
    }

    /// Reads an IDX label file (magic `0x00000801`). When `classCount` is given, every label
    /// must be in `0..<classCount`.
    /// - Throws: as `readImages`, plus `DatasetError.labelOutOfRange` naming the record index.
    public static func readLabels(path: String, classCount: Int? = nil) throws -> [Int] {
        let bytes = try FileBytes.load(path)
        let dims = try parseHeader(bytes, path: path, magic: labelsMagic, what: "label")
        let header = 8
        try checkPayload(bytes, path: path, header: header, expected: dims[0])
        var labels = [Int](repeating: 0, count: dims[0])
        try bytes.withUnsafeBufferPointer { src in
            try labels.withUnsafeMutableBufferPointer { dst in
                for i in 0..<dst.count {
                    let label = Int(src[header + i])
                    if let classCount, label >= classCount {
                        throw DatasetError.labelOutOfRange(path: path, record: i, field: "class",
                                                           label: label, classCount: classCount)
                    }
                    dst[i] = label
                }
            }
        }
        return labels
    }

    /// Reads an image file and its label file as one dataset, `[N, 1, rows, cols]`, ids `0..<N`.
    /// - Parameters:
    ///   - classCount: labels must lie in `0..<classCount` (10 for MNIST and Fashion-MNIST).
    ///   - classNames: empty, or `classCount` names.
    /// - Throws: the `readImages`/`readLabels` errors and `DatasetError.countMismatch`.
    public static func load(imagesPath: String, labelsPath: String, classCount: Int = 10,
                            classNames: [String] = []) throws -> ImageDataset {
        let images = try readImages(path: imagesPath)
        let labels = try readLabels(path: labelsPath, classCount: classCount)
        if images.count != labels.count {
            throw DatasetError.countMismatch(imagesPath: imagesPath, imageCount: images.count,
                                             labelsPath: labelsPath, labelCount: labels.count)
        }
        return ImageDataset(images: images.pixels, labels: labels, channels: 1, height: images.rows,
                            width: images.cols, classCount: classCount, classNames: classNames)
    }

    /// Parses the magic and the big-endian sizes; returns the sizes.
    private static func parseHeader(_ bytes: [UInt8], path: String, magic: UInt32, what: String) throws -> [Int] {
        let ndims = Int(magic & 0xFF)
        let headerBytes = 4 + 4 * ndims
        if bytes.count < 4 {
            throw DatasetError.sizeMismatch(path: path, expectedBytes: headerBytes, foundBytes: bytes.count)
        }
        let found = readBigEndian32(bytes, at: 0)
        if found != magic {
            var hint = "expected an IDX \(what) file (unsigned bytes, \(ndims) dimension\(ndims == 1 ? "" : "s"))."
            if found == imagesMagic { hint += " This is an image file (idx3): swap the image and label paths." }
            else if found == labelsMagic { hint += " This is a label file (idx1): swap the image and label paths." }
            else if found >> 16 == 0x1f8b { hint += " The file is gzip inside gzip: decompress it once with gunzip." }
            else { hint += " Check that the path points at an MNIST-format file." }
            throw DatasetError.badMagic(path: path, expected: magic, found: found, hint: hint)
        }
        if bytes.count < headerBytes {
            throw DatasetError.sizeMismatch(path: path, expectedBytes: headerBytes, foundBytes: bytes.count)
        }
        return (0..<ndims).map { Int(readBigEndian32(bytes, at: 4 + 4 * $0)) }
    }

    private static func checkPayload(_ bytes: [UInt8], path: String, header: Int, expected: Int) throws {
        // bytes.count >= header (parseHeader checked it); compared without forming header + expected.
        if bytes.count - header != expected {
            let (implied, overflow) = header.addingReportingOverflow(expected)
            throw DatasetError.sizeMismatch(path: path, expectedBytes: overflow ? Int.max : implied, foundBytes: bytes.count)
        }
    }

    private static func readBigEndian32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16
            | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }
}

/// Which part of a dataset with a fixed train/test partition.
public enum DatasetSplit: String, Sendable, CaseIterable {
    case train
    case test
}

/// Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): 28x28 grayscale, 10 classes, 60,000 train and
/// 10,000 test images, in IDX format (raw or gzip).
public enum FashionMNIST {
    /// Class names, index = label (from the dataset's README).
    public static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    /// Where Debian's `dataset-fashion-mnist` package installs the gzipped files.
    public static let debianDirectory = "/usr/share/datasets/fashion-mnist"

    /// Loads `split` from `directory`, which holds `{train,t10k}-{images-idx3,labels-idx1}-ubyte`
    /// with or without a `.gz` suffix (the plain name wins when both exist).
    /// Returns `[N, 1, 28, 28]` (N = 60,000 / 10,000 for the official files), ids `0..<N`.
    /// - Throws: `DatasetError.missingFile` and the `IDX.load` errors.
    public static func load(directory: String, split: DatasetSplit) throws -> ImageDataset {
        try MNISTFiles.load(directory: directory, split: split, classNames: classNames,
                            datasetName: "Fashion-MNIST")
    }
}

/// MNIST handwritten digits in IDX format; same file names as Fashion-MNIST.
public enum MNIST {
    /// Class names "0" ... "9".
    public static let classNames = (0..<10).map { String($0) }

    /// Loads `split` from `directory` (see `FashionMNIST.load`).
    public static func load(directory: String, split: DatasetSplit) throws -> ImageDataset {
        try MNISTFiles.load(directory: directory, split: split, classNames: classNames, datasetName: "MNIST")
    }
}

enum MNISTFiles {
    static func load(directory: String, split: DatasetSplit, classNames: [String],
                     datasetName: String) throws -> ImageDataset {
        let prefix = split == .train ? "train" : "t10k"
        let images = try find(directory: directory, base: "\(prefix)-images-idx3-ubyte", datasetName: datasetName)
        let labels = try find(directory: directory, base: "\(prefix)-labels-idx1-ubyte", datasetName: datasetName)
        return try IDX.load(imagesPath: images, labelsPath: labels, classCount: classNames.count,
                            classNames: classNames)
    }

    static func find(directory: String, base: String, datasetName: String) throws -> String {
        let plain = joinPath(directory, base)
        if FileBytes.exists(plain) { return plain }
        if FileBytes.exists(plain + ".gz") { return plain + ".gz" }
        throw DatasetError.missingFile(
            path: plain + "[.gz]",
            hint: "point the data directory at the \(datasetName) files (Debian: apt-get install dataset-fashion-mnist "
                + "installs Fashion-MNIST in \(FashionMNIST.debianDirectory)).")
    }
}

func joinPath(_ directory: String, _ name: String) -> String {
    directory.hasSuffix("/") ? directory + name : directory + "/" + name
}
