import Foundation
import XCTest
@testable import Datasets

/// Inputs found by the libFuzzer harnesses (Fuzz/, launch/fuzz.sh; docs/fuzzing.md). Each one
/// trapped or crashed a reader before its fix; now each must be a thrown error naming the file.
/// The crashing files themselves are kept in Fuzz/Regressions/<target>/.
final class FuzzRegressionTests: XCTestCase {
    private var directory: String!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "DatasetsFuzzRegression-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let path = directory + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// fuzz target idx: an IDX image header whose sizes multiply past Int.max (count 0x1f767676,
    /// rows = cols = 0x76767676) trapped on the overflowing `count * rows * cols`.
    func testIDXImageSizesWhoseProductOverflows() throws {
        let bytes: [UInt8] = [0x00, 0x00, 0x08, 0x03, 0x1f] + [UInt8](repeating: 0x76, count: 62) + [0x8b]
        let path = try write(bytes, "overflow-idx3-ubyte")
        XCTAssertThrowsError(try IDX.readImages(path: path)) { error in
            guard case let DatasetError.badHeader(errorPath, field, _, found)? = error as? DatasetError else {
                return XCTFail("expected badHeader, got \(error)")
            }
            XCTAssertEqual(errorPath, path)
            XCTAssertEqual(field, "count x rows x cols")
            XCTAssertEqual(found, "\(0x1f76_7676) x \(0x7676_7676) x \(0x7676_7676)")
        }
        // Largest sizes (2^32 - 1 each) as well.
        let largest = try write([0, 0, 8, 3] + [UInt8](repeating: 0xFF, count: 12), "largest-idx3-ubyte")
        XCTAssertThrowsError(try IDX.readImages(path: largest))
    }

    /// fuzz target idx-gzip (differential check against zlib's gzread): a valid gzip file whose
    /// last inflate call filled the 256 KiB output buffer exactly as the stream ended was
    /// rejected as truncated (the loop reset the finished member at the end of the input).
    /// The file: an IDX label file of 262,136 zero labels (262,144 bytes), gzip level 9.
    func testGzipStreamEndingExactlyAtAFullOutputBuffer() throws {
        let gz = try XCTUnwrap(Data(base64Encoded: Self.labels256KiBGzip))
        let path = try write([UInt8](gz), "labels-idx1-ubyte.gz")
        let bytes = try FileBytes.load(path)
        XCTAssertEqual(bytes.count, FileBytes.outputChunkBytes)
        XCTAssertEqual(Array(bytes.prefix(8)), [0, 0, 8, 1, 0, 0x03, 0xFF, 0xF8])
        XCTAssertTrue(bytes.dropFirst(8).allSatisfy { $0 == 0 })
        XCTAssertEqual(try IDX.readLabels(path: path, classCount: 10).count, 262_136)
        // The same stream followed by a second member still reads as both members.
        let twice = try write([UInt8](gz) + [UInt8](gz), "twice.gz")
        XCTAssertEqual(try FileBytes.load(twice).count, 2 * FileBytes.outputChunkBytes)
    }

    /// fuzz target csv-images: an integral label above Int.max (line 2 ends in a 47-digit label)
    /// passed the "integer >= 0" check and trapped converting the Double to Int; so did `inf`.
    /// Now such labels are bad records naming the line; a label just past the classes stays a
    /// labelOutOfRange error.
    func testCSVLabelsBeyondIntAreBadRecords() throws {
        for label in ["95555555555555555555555555555555555555555555512", "inf", "1e300", "4.7e18"] {
            let path = try write(Array("0,255,128,7,3\n12,13,14,15,\(label)\n".utf8), "labels.csv")
            XCTAssertThrowsError(try CSVImages.read(path: path, height: 2, width: 2, classCount: 10), label) { error in
                guard case let DatasetError.badRecord(_, line, field, _, _)? = error as? DatasetError else {
                    return XCTFail("label \(label): expected badRecord, got \(error)")
                }
                XCTAssertEqual(line, 2)
                XCTAssertEqual(field, "label")
            }
        }
        let path = try write(Array("0,255,128,7,3\n12,13,14,15,10\n".utf8), "ten.csv")
        XCTAssertThrowsError(try CSVImages.read(path: path, height: 2, width: 2, classCount: 10)) { error in
            XCTAssertEqual(error as? DatasetError, .labelOutOfRange(path: path, record: 1, field: "class", label: 10, classCount: 10))
        }
    }

    /// A 1x1 baseline JPEG whose frame header (SOF0) is patched to declare `width` x `height`.
    private func jpegDeclaring(width: Int, height: Int) throws -> [UInt8] {
        var bytes = try ImageEncoder.jpeg(DecodedImage(pixels: [200, 10, 30], channels: 3, height: 1, width: 1))
        let sof = try XCTUnwrap((0 ..< bytes.count - 9).first { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xC0 })
        bytes[sof + 5] = UInt8(height >> 8); bytes[sof + 6] = UInt8(height & 0xFF)
        bytes[sof + 7] = UInt8(width >> 8); bytes[sof + 8] = UInt8(width & 0xFF)
        return bytes
    }

    /// fuzz targets jpeg and png (libFuzzer's malloc limit): a ~300-byte JPEG declaring
    /// 65000 x 65000 pixels made the decoder allocate 12.7 GB (and, had that succeeded, decode
    /// 4.2 billion pixels of grey: libjpeg fills a scan cut short by a marker); a 69-byte PNG
    /// declaring 65536 x 65536 16-bit RGBA allocated 17 GB. Sizes above the pixel limit
    /// (PIL's decompression-bomb limit by default) are now refused from the header.
    func testImagesDeclaringTooManyPixelsAreRefusedBeforeAllocating() throws {
        let jpeg = try jpegDeclaring(width: 65000, height: 65000)
        XCTAssertThrowsError(try ImageDecoder.decode(jpeg, path: "bomb.jpg")) { error in
            guard case let ImageFileError.unsupportedImage(path, format, reason)? = error as? ImageFileError else {
                return XCTFail("expected unsupportedImage, got \(error)")
            }
            XCTAssertEqual(path, "bomb.jpg")
            XCTAssertEqual(format, "JPEG")
            XCTAssertTrue(reason.contains("65000x65000 = 4225000000 pixels") && reason.contains("178956970"), reason)
        }
        let png = Self.bytes(hex: "89504e470d0a1a0a0000000d49484452000100000001000010060000003c14eca00000000c49444154"
                                + "789c6360a03d00000064000186643c350000000049454e44ae426082")
        XCTAssertThrowsError(try ImageDecoder.decode(png, path: "bomb.png")) { error in
            guard case let ImageFileError.unsupportedImage(_, format, reason)? = error as? ImageFileError else {
                return XCTFail("expected unsupportedImage, got \(error)")
            }
            XCTAssertEqual(format, "PNG")
            XCTAssertTrue(reason.contains("65536x65536"), reason)
        }
        // The limit is a parameter: 300 x 200 passes at 60,000 pixels and is refused at 59,999.
        let small = try jpegDeclaring(width: 300, height: 200)
        XCTAssertThrowsError(try ImageDecoder.decode(small, path: "s.jpg", maximumPixels: 59_999))
        let decoded = try ImageDecoder.decode(small, path: "s.jpg", maximumPixels: 60_000)
        XCTAssertEqual([decoded.channels, decoded.height, decoded.width], [3, 200, 300])
    }

    private static func bytes(hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            out.append(UInt8(hex[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    static let labels256KiBGzip = "H4sIAAAAAAACA+3BoREAMAgEsOdq2H9aHDWMkSTpytsJAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAMD5qP/T0QAABAA="
}
