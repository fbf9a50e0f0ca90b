/// Errors thrown by the dataset readers.
///
/// Every case names the file it is about; `description` gives the expected and the found value
/// and ends with a hint. Programmer misuse (bad arguments to the sampler, shapes that do not
/// match a caller-provided buffer) is a `precondition`, not an error.
public enum DatasetError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file could not be opened, sized or read. `reason` is the C library's message.
    case cannotRead(path: String, reason: String)
    /// The header's magic number is not the one the format requires.
    case badMagic(path: String, expected: UInt32, found: UInt32, hint: String)
    /// A header field has a value the reader does not accept.
    case badHeader(path: String, field: String, expected: String, found: String)
    /// The file (after decompression) holds fewer or more bytes than its header announces.
    case sizeMismatch(path: String, expectedBytes: Int, foundBytes: Int)
    /// The gzip stream ended before zlib saw its end-of-stream marker.
    case truncatedGzip(path: String, compressedBytes: Int, decompressedBytes: Int)
    /// zlib rejected the gzip stream (bad header, bad block, CRC or length mismatch).
    case corruptGzip(path: String, zlibCode: Int32, message: String)
    /// An image file and its label file disagree on the number of samples.
    case countMismatch(imagesPath: String, imageCount: Int, labelsPath: String, labelCount: Int)
    /// A fixed-record file whose size is not a whole number of records.
    case partialRecord(path: String, fileBytes: Int, recordBytes: Int)
    /// A label outside `0..<classCount`. `record` is the 0-based record index in the file.
    case labelOutOfRange(path: String, record: Int, field: String, label: Int, classCount: Int)
    /// A directory lacks a file the format requires.
    case missingFile(path: String, hint: String)
    /// A text record (CSV line, 1-based `line`) with a field the reader does not accept.
    case badRecord(path: String, line: Int, field: String, expected: String, found: String)
    /// A class-name file lists the wrong number of names.
    case classNameCount(path: String, expected: Int, found: Int)

    public var description: String {
        switch self {
        case let .cannotRead(path, reason):
            return "\(path): cannot read file (\(reason)). Hint: check that the path exists and is readable."
        case let .badMagic(path, expected, found, hint):
            return "\(path): bad magic number: expected \(hex(expected)), found \(hex(found)). Hint: \(hint)"
        case let .badHeader(path, field, expected, found):
            return "\(path): header field '\(field)': expected \(expected), found \(found). "
                + "Hint: the file is not in the expected format or is damaged; re-extract it."
        case let .sizeMismatch(path, expectedBytes, foundBytes):
            let what = foundBytes < expectedBytes ? "truncated" : "has trailing data"
            return "\(path): file \(what): header implies \(expectedBytes) bytes, found \(foundBytes) bytes"
                + " (after decompression). Hint: the download or extraction was incomplete; fetch the file again."
        case let .truncatedGzip(path, compressedBytes, decompressedBytes):
            return "\(path): gzip stream truncated: input ended after \(compressedBytes) compressed bytes "
                + "(\(decompressedBytes) bytes decompressed) without an end-of-stream marker. "
                + "Hint: the file is incomplete; fetch it again (gzip -t checks it)."
        case let .corruptGzip(path, zlibCode, message):
            return "\(path): corrupt gzip stream: zlib error \(zlibCode) (\(message)). "
                + "Hint: the file is damaged or not gzip; gzip -t checks it."
        case let .countMismatch(imagesPath, imageCount, labelsPath, labelCount):
            return "\(imagesPath) holds \(imageCount) images but \(labelsPath) holds \(labelCount) labels: "
                + "expected equal counts. Hint: the image and label files belong to different splits "
                + "(e.g. train images with t10k labels)."
        case let .partialRecord(path, fileBytes, recordBytes):
            return "\(path): file size \(fileBytes) bytes is not a multiple of the record size \(recordBytes) bytes "
                + "(\(fileBytes / recordBytes) whole records, \(fileBytes % recordBytes) extra bytes). "
                + "Hint: the file is truncated, or it is a different variant (CIFAR-10 records are 3073 bytes, "
                + "CIFAR-100 records 3074 bytes)."
        case let .labelOutOfRange(path, record, field, label, classCount):
            return "\(path): record \(record): \(field) label \(label) is out of range: expected 0..<\(classCount). "
                + "Hint: the file is damaged or is a different dataset variant (CIFAR-10 vs CIFAR-100)."
        case let .missingFile(path, hint):
            return "\(path): file not found. Hint: \(hint)"
        case let .badRecord(path, line, field, expected, found):
            return "\(path): line \(line): \(field): expected \(expected), found \(found). "
                + "Hint: check the image size, the label column and the value range given to the reader."
        case let .classNameCount(path, expected, found):
            return "\(path): expected \(expected) class names (one per non-empty line), found \(found). "
                + "Hint: the metadata file belongs to a different dataset."
        }
    }
}

private func hex(_ v: UInt32) -> String {
    let digits = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}
