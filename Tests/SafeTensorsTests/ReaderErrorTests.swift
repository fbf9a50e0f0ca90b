import Foundation
import XCTest
@testable import SafeTensors

/// Every reader error path: the typed case and the message (file, tensor, expected vs actual, hint).
final class ReaderErrorTests: XCTestCase {
    let f32x2 = "\"dtype\":\"F32\",\"shape\":[2]"

    func testShortFileWithoutLengthPrefix() {
        let error = decodeError([1, 2, 3])
        XCTAssertEqual(error, .truncatedFile(source: "test.safetensors", part: "8-byte header length prefix",
                                             expectedBytes: 8, actualBytes: 3))
        assertMessage(error, contains: ["test.safetensors", "truncated", "needs 8 bytes", "only 3"])
    }

    func testHeaderLengthLargerThanFile() {
        let error = decodeError(rawFile(header: "{}", declaredLength: 500))
        XCTAssertEqual(error, .truncatedFile(source: "test.safetensors", part: "header (length from the prefix)",
                                             expectedBytes: 500, actualBytes: 2))
        assertMessage(error, contains: ["test.safetensors", "needs 500 bytes", "only 2", "previous complete checkpoint"])
    }

    func testHeaderLengthAboveLimit() {
        let error = decodeError(rawFile(header: "{}", declaredLength: UInt64.max))
        XCTAssertEqual(error, .headerTooLarge(source: "test.safetensors", headerLength: .max, limit: 100_000_000))
        assertMessage(error, contains: ["18446744073709551615", "at most 100000000"])
    }

    func testInvalidJSONReportsOffset() {
        let error = decodeError(rawFile(header: "{\"a\": }"))
        XCTAssertEqual(error, .invalidJSON(source: "test.safetensors", byteOffset: 6,
                                           reason: "expected a value, found '}'"))
        assertMessage(error, contains: ["not valid JSON", "header byte 6", "found '}'"])
        // Trailing garbage, truncated string, bad literal, leading zero, control character.
        for header in ["{} x", "{\"a", "{\"a\": tru}", "{\"a\": 01}", "{\"a\u{01}\": 1}", "", "   "] {
            guard case .invalidJSON? = decodeError(rawFile(header: header)) else {
                return XCTFail("header \(header.debugDescription) should be invalid JSON")
            }
        }
    }

    func testInvalidUTF8InHeader() {
        var bytes = rawFile(header: "{\"ab\":{}}")
        bytes[8 + 3] = 0xFF  // inside the key
        let error = decodeError(bytes)
        XCTAssertEqual(error, .invalidJSON(source: "test.safetensors", byteOffset: 1, reason: "string is not valid UTF-8"))
    }

    func testDuplicateKeyIsRejected() {
        let entry = "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"
        let error = decodeError(rawFile(header: "{\"w\":\(entry),\"w\":\(entry)}", data: [0, 0, 0, 0]))
        guard case let .invalidJSON(_, offset, reason)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertEqual(reason, "duplicate key \"w\"")
        XCTAssertEqual(offset, 6 + entry.utf8.count)
    }

    func testDeepNestingIsAnErrorNotAStackOverflow() {
        let header = "{\"a\":" + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}"
        let error = decodeError(rawFile(header: header))
        guard case let .invalidJSON(_, _, reason)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertTrue(reason.contains("nesting deeper than 64"), reason)
    }

    func testHeaderThatIsNotAnObject() {
        let error = decodeError(rawFile(header: "[1, 2]"))
        XCTAssertEqual(error, .headerNotObject(source: "test.safetensors", actual: "array"))
        assertMessage(error, contains: ["must be a JSON object", "got a JSON array"])
        XCTAssertEqual(decodeError(rawFile(header: "\"x\"")), .headerNotObject(source: "test.safetensors", actual: "string"))
    }

    func testEntryThatIsNotAnObject() {
        let error = decodeError(rawFile(header: "{\"fc.weight\": 5}"))
        assertMessage(error, contains: ["tensor 'fc.weight'", "an object with dtype, shape, data_offsets", "a JSON number 5"])
    }

    func testMissingAndIllTypedFields() {
        let missing = decodeError(rawFile(header: "{\"w\":{\(f32x2)}}", data: Array(repeating: 0, count: 8)))
        XCTAssertEqual(missing, .invalidTensorEntry(source: "test.safetensors", tensor: "w", field: "data_offsets",
                                                    expected: "a value (the field is required)", actual: "nothing (field missing)"))
        assertMessage(missing, contains: ["tensor 'w'", "field 'data_offsets'"])

        let fractional = decodeError(rawFile(header: "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}",
                                             data: Array(repeating: 0, count: 8)))
        assertMessage(fractional, contains: ["tensor 'w'", "field 'shape'", "non-negative integers", "got [2.0]"])

        let negative = decodeError(rawFile(header: "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}"))
        assertMessage(negative, contains: ["field 'shape'", "got [-2]"])

        let threeOffsets = decodeError(rawFile(header: "{\"w\":{\(f32x2),\"data_offsets\":[0,8,9]}}"))
        assertMessage(threeOffsets, contains: ["field 'data_offsets'", "an array of 2 non-negative integers", "got [0,8,9]"])

        let dtypeNumber = decodeError(rawFile(header: "{\"w\":{\"dtype\":32,\"shape\":[],\"data_offsets\":[0,4]}}"))
        assertMessage(dtypeNumber, contains: ["field 'dtype'", "a string such as \"F32\"", "got 32"])

        let huge = decodeError(rawFile(header: "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}"))
        assertMessage(huge, contains: ["tensor 'w'", "product fits in a 64-bit Int", "[4294967296, 4294967296]"])
    }

    func testUnknownDType() {
        let error = decodeError(rawFile(header: "{\"w\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                                        data: [0, 0, 0, 0]))
        XCTAssertEqual(error, .unknownDType(source: "test.safetensors", tensor: "w", dtype: "F33"))
        assertMessage(error, contains: ["tensor 'w'", "unknown dtype 'F33'", "F32", "BF16"])
    }

    func testUnsupportedDTypeNamesTheTensor() throws {
        let bytes = rawFile(header: "{\"layer1.0.bn1.weight\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
                            data: [0, 0x3F, 0, 0x40])
        let error = decodeError(bytes)
        XCTAssertEqual(error, .unsupportedDType(source: "test.safetensors", tensor: "layer1.0.bn1.weight", dtype: .bf16))
        assertMessage(error, contains: ["tensor 'layer1.0.bn1.weight'", "BF16 is not supported", "expected F32 or I64",
                                        "astype(np.float32)"])
        // Opt-in keeps the raw bytes.
        let decoded = try SafeTensorsFile.decode(bytes, allowingUnsupportedDTypes: true)
        XCTAssertEqual(decoded.records.first?.bytes, [0, 0x3F, 0, 0x40])
    }

    func testOffsetsOutOfRange() {
        let beyond = decodeError(rawFile(header: "{\"w\":{\(f32x2),\"data_offsets\":[0,8]}}", data: [0, 0, 0, 0]))
        XCTAssertEqual(beyond, .offsetsOutOfRange(source: "test.safetensors", tensor: "w", begin: 0, end: 8, dataLength: 4))
        assertMessage(beyond, contains: ["tensor 'w'", "[0, 8] out of range", "end <= 4"])

        let reversed = decodeError(rawFile(header: "{\"w\":{\(f32x2),\"data_offsets\":[8,0]}}", data: Array(repeating: 0, count: 8)))
        XCTAssertEqual(reversed, .offsetsOutOfRange(source: "test.safetensors", tensor: "w", begin: 8, end: 0, dataLength: 8))

        let giant = decodeError(rawFile(header: "{\"w\":{\(f32x2),\"data_offsets\":[0,99999999999999999999]}}"))
        guard case let .invalidTensorEntry(_, tensor, field, _, _)? = giant else { return XCTFail("\(String(describing: giant))") }
        XCTAssertEqual([tensor, field], ["w", "data_offsets"])
    }

    func testSizeMismatch() {
        let error = decodeError(rawFile(header: "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
                                        data: Array(repeating: 0, count: 8)))
        XCTAssertEqual(error, .sizeMismatch(source: "test.safetensors", tensor: "w", dtype: .f32, shape: [3],
                                            expectedBytes: 12, actualBytes: 8))
        assertMessage(error, contains: ["tensor 'w'", "F32 shape [3] needs 12 bytes", "span 8"])
    }

    func testOverlappingTensors() {
        let header = "{\"a\":{\(f32x2),\"data_offsets\":[0,8]},\"b\":{\(f32x2),\"data_offsets\":[4,12]}}"
        let error = decodeError(rawFile(header: header, data: Array(repeating: 0, count: 12)))
        XCTAssertEqual(error, .nonContiguousData(source: "test.safetensors", tensor: "b", begin: 4, previous: "a", expectedBegin: 8))
        assertMessage(error, contains: ["tensor 'b'", "overlaps", "begins at byte 4, expected 8", "tensor 'a' ends"])
        // Two tensors sharing the same bytes.
        let same = "{\"a\":{\(f32x2),\"data_offsets\":[0,8]},\"b\":{\(f32x2),\"data_offsets\":[0,8]}}"
        guard case .nonContiguousData? = decodeError(rawFile(header: same, data: Array(repeating: 0, count: 8))) else {
            return XCTFail("aliasing tensors must be rejected")
        }
    }

    func testGapBetweenTensors() {
        let header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}"
        let error = decodeError(rawFile(header: header, data: Array(repeating: 0, count: 8)))
        XCTAssertEqual(error, .nonContiguousData(source: "test.safetensors", tensor: "a", begin: 4, previous: nil, expectedBegin: 0))
        assertMessage(error, contains: ["tensor 'a'", "gap", "begins at byte 4, expected 0", "the data section starts"])
    }

    func testTrailingBytes() {
        let header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"
        let error = decodeError(rawFile(header: header, data: Array(repeating: 0, count: 6)))
        XCTAssertEqual(error, .incompleteData(source: "test.safetensors", coveredBytes: 4, dataLength: 6))
        assertMessage(error, contains: ["cover 4 bytes", "expected all 6", "trailing"])
    }

    func testInvalidMetadata() {
        let nonString = decodeError(rawFile(header: "{\"__metadata__\":{\"epochs\":100}}"))
        XCTAssertEqual(nonString, .invalidMetadata(source: "test.safetensors", key: "epochs",
                                                   reason: "expected a string value, got a JSON number 100"))
        assertMessage(nonString, contains: ["__metadata__ key 'epochs'", "expected a string value", "number 100"])
        let notObject = decodeError(rawFile(header: "{\"__metadata__\":[\"a\"]}"))
        assertMessage(notObject, contains: ["__metadata__", "expected a JSON object", "array [\"a\"]"])
    }

    func testValidEdgeCasesAreAccepted() throws {
        // Whitespace and padding around the header, escapes, a null __metadata__, extra fields
        // (ignored, as in the reference), zero-size tensors at the end of the data section.
        let header = " \t{\"__metadata__\":null,\"a\\u00b5\\n\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":1},"
            + "\"z\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[4,4]}}\n   "
        let decoded = try SafeTensorsFile.decode(rawFile(header: header, data: [0, 0, 0x80, 0x3F]))
        XCTAssertEqual(decoded.names, ["aµ\n", "z"])
        XCTAssertEqual(try decoded.records[0].floats(), [1])
        XCTAssertEqual(try decoded.records[1].int64s(), [])
        XCTAssertEqual(decoded.metadata, [:])
        // A surrogate pair escape decodes to one scalar.
        let emoji = try SafeTensorsFile.decode(rawFile(header: "{\"__metadata__\":{\"k\":\"\\ud83d\\ude00\"}}"))
        XCTAssertEqual(emoji.metadata["k"], "😀")
        // An empty header object and no data is a valid (empty) file.
        XCTAssertEqual(try SafeTensorsFile.decode(rawFile(header: "{}")), SafeTensorsFile())
    }

    func testUnreadableFile() {
        XCTAssertThrowsError(try SafeTensorsFile.read(path: "/nonexistent/dir/model.safetensors")) { error in
            guard case let .unreadableFile(path, _)? = error as? SafeTensorsError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, "/nonexistent/dir/model.safetensors")
            XCTAssertEqual(error as? SafeTensorsError, .unreadableFile(path: "/nonexistent/dir/model.safetensors",
                                                                        reason: "open: No such file or directory"))
            assertMessage(error as? SafeTensorsError, contains: ["/nonexistent/dir/model.safetensors", "cannot read"])
        }
    }

    func testDirectoryIsNotAFile() throws {
        let directory = try makeTemporaryDirectory(self)
        XCTAssertThrowsError(try SafeTensorsFile.read(path: directory)) { error in
            XCTAssertEqual(error as? SafeTensorsError, .unreadableFile(path: directory, reason: "not a regular file"))
        }
    }

    func testErrorsFromDiskNameThePath() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/broken.safetensors"
        var bytes = try referenceFile().encode()
        bytes.removeLast(3)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try SafeTensorsFile.read(path: path)) { error in
            assertMessage(error as? SafeTensorsError, contains: [path, "out of range"])
            XCTAssertEqual((error as? LocalizedError)?.errorDescription, (error as? SafeTensorsError)?.description)
        }
    }
}
