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

    static let labels256KiBGzip = "H4sIAAAAAAACA+3BoREAMAgEsOdq2H9aHDWMkSTpytsJAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAMD5qP/T0QAABAA="
}
