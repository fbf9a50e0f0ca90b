import Foundation
import XCTest
@testable import SafeTensors

final class RoundTripTests: XCTestCase {
    /// Special float32 bit patterns: quiet NaN with payload, signalling NaN, negative NaN,
    /// -0.0, +0.0, smallest and largest subnormal, smallest normal, +-inf, +-max.
    let specialFloatBits: [UInt32] = [
        0x7FC0_0001, 0x7F80_0001, 0xFFC1_2345, 0x8000_0000, 0x0000_0000, 0x0000_0001, 0x807F_FFFF,
        0x0080_0000, 0x7F80_0000, 0xFF80_0000, 0x7F7F_FFFF, 0xFF7F_FFFF,
    ]

    func testEveryBitSurvivesInMemoryRoundTrip() throws {
        let floats = specialFloatBits.map(Float.init(bitPattern:))
        let ints: [Int64] = [.min, .min + 1, -1, 0, 1, .max - 1, .max]
        let file = SafeTensorsFile(records: [
            SafeTensorsRecord(name: "specials", shape: [3, 4], floats: floats),
            SafeTensorsRecord(name: "ints", shape: [7], int64s: ints),
            SafeTensorsRecord(name: "bn1.num_batches_tracked", shape: [], int64s: [Int64.max]),
            SafeTensorsRecord(name: "scalar", shape: [], floats: [-0.0]),
            SafeTensorsRecord(name: "empty", shape: [2, 0, 5], floats: []),
        ], metadata: ["architecture": "resnet18", "args": "{\"num_classes\": 10}", "": "empty key"])
        let decoded = try SafeTensorsFile.decode(try file.encode())
        XCTAssertEqual(floatBits(try XCTUnwrap(decoded.record(named: "specials")).floats()), specialFloatBits)
        XCTAssertEqual(try decoded.record(named: "ints")?.int64s(), ints)
        XCTAssertEqual(try decoded.record(named: "bn1.num_batches_tracked")?.int64s(), [Int64.max])
        XCTAssertEqual(try decoded.record(named: "scalar")?.floats().map(\.bitPattern), [0x8000_0000])
        XCTAssertEqual(decoded.record(named: "scalar")?.shape, [])
        XCTAssertEqual(decoded.record(named: "empty")?.shape, [2, 0, 5])
        XCTAssertEqual(decoded.record(named: "empty")?.bytes, [])
        XCTAssertEqual(decoded.metadata, file.metadata)
        XCTAssertTrue(decoded.hasSameContents(as: file))
    }

    func testRecordAccessorsAreLittleEndianAndRowMajor() throws {
        let record = SafeTensorsRecord(name: "w", shape: [2], floats: [1.0, -2.0])
        // 1.0 = 0x3F800000, -2.0 = 0xC0000000, little-endian byte order.
        XCTAssertEqual(record.bytes, [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0])
        let ints = SafeTensorsRecord(name: "n", shape: [1], int64s: [0x0102_0304_0506_0708])
        XCTAssertEqual(ints.bytes, [0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01])
        let raw = try SafeTensorsRecord(name: "r", dtype: .f32, shape: [1, 1], bytes: [0x00, 0x00, 0xC0, 0x3F])
        XCTAssertEqual(try raw.floats(), [1.5])
    }

    func testFileRoundTripThroughDisk() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/model.safetensors"
        let file = referenceFile()
        try file.write(to: path)
        let loaded = try SafeTensorsFile.read(path: path)
        XCTAssertTrue(loaded.hasSameContents(as: file))
        // Overwriting replaces the contents.
        let second = SafeTensorsFile(records: [SafeTensorsRecord(name: "x", shape: [1], floats: [2])])
        try second.write(to: path)
        XCTAssertEqual(try SafeTensorsFile.read(path: path), second)
        // No temporary file is left behind by successful writes.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["model.safetensors"])
    }

    func testUnsupportedDTypesRoundTripAsRawBytesWhenAllowed() throws {
        let file = SafeTensorsFile(records: [
            try SafeTensorsRecord(name: "mask", dtype: .bool, shape: [3], bytes: [1, 0, 1]),
            try SafeTensorsRecord(name: "half", dtype: .f16, shape: [2], bytes: [0x00, 0x3C, 0x00, 0xC0]),
            try SafeTensorsRecord(name: "packed", dtype: .f4, shape: [4], bytes: [0x12, 0x34]),
            SafeTensorsRecord(name: "w", shape: [1], floats: [3]),
        ])
        let bytes = try file.encode()
        let decoded = try SafeTensorsFile.decode(bytes, allowingUnsupportedDTypes: true)
        XCTAssertTrue(decoded.hasSameContents(as: file))
        XCTAssertThrowsError(try decoded.record(named: "half")?.floats()) { error in
            assertMessage(error as? SafeTensorsError, contains: ["'half'", "requested F32", "holds F16"])
        }
        // Data order is the reference one (descending Dtype enum rank): F32, F16, F4, BOOL.
        XCTAssertEqual(decoded.names, ["w", "half", "packed", "mask"])
    }

    func testEncodingIsDeterministicAndPadded() throws {
        var records = referenceFile().records
        let reference = try SafeTensorsFile(records: records, metadata: referenceFile().metadata).encode()
        var generator = SplitMix64(state: 7)
        for _ in 0..<5 {
            records.shuffle(using: &generator)
            XCTAssertEqual(try SafeTensorsFile(records: records, metadata: referenceFile().metadata).encode(), reference)
        }
        // Header lengths for 0...9 one-letter-named tensors are all padded with spaces to a multiple of 8.
        for count in 0..<10 {
            let file = SafeTensorsFile(records: (0..<count).map {
                SafeTensorsRecord(name: String(UnicodeScalar(UInt8(97 + $0))), shape: [1], floats: [Float($0)])
            })
            let bytes = try file.encode()
            let headerLength = bytes[0..<8].enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
            XCTAssertEqual(headerLength % 8, 0)
            XCTAssertEqual(bytes.count, 8 + headerLength + 4 * count)
            let header = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
            XCTAssertTrue(header.hasPrefix("{"))
            XCTAssertEqual(header.trimmingCharacters(in: .init(charactersIn: " ")).last, "}")
            XCTAssertEqual(try SafeTensorsFile.decode(bytes), file)
        }
        // An empty file is "{}" padded to 8 bytes.
        XCTAssertEqual(try SafeTensorsFile().encode(), [8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8))
    }

    func testCrashDuringWriteLeavesPreviousFileIntact() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/ckpt.safetensors"
        let first = referenceFile()
        try first.write(to: path)
        var second = first
        second.records[0] = SafeTensorsRecord(name: "conv1.weight", shape: [24], floats: Array(repeating: 9, count: 24))
        let secondBytes = try second.encode()
        for cut in [0, 1, 8, 100, secondBytes.count - 1, secondBytes.count] {
            try SafeTensorsFile.writeAtomically(secondBytes, to: path, crashAfterBytes: cut)
            XCTAssertEqual(try SafeTensorsFile.read(path: path), try SafeTensorsFile.decode(try first.encode()),
                           "simulated crash after \(cut) bytes changed the target")
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0 != "ckpt.safetensors" }
        XCTAssertEqual(leftovers.count, 6)
        XCTAssertTrue(leftovers.allSatisfy { $0.hasPrefix(".ckpt.safetensors.tmp.") })
        try second.write(to: path)
        XCTAssertTrue(try SafeTensorsFile.read(path: path).hasSameContents(as: second))
    }
}
