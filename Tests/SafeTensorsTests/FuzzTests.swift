import XCTest
@testable import SafeTensors

/// Corrupted inputs must give a thrown SafeTensorsError or a valid parse, never a crash.
final class FuzzTests: XCTestCase {
    let valid: [UInt8] = (try? referenceFile().encode()) ?? []

    /// Checks the invariants of a successful parse of `bytes`.
    func assertConsistent(_ file: SafeTensorsFile, from bytes: [UInt8], file source: StaticString = #filePath, line: UInt = #line) {
        var total = 0
        for record in file.records {
            let count = safeTensorsElementCount(shape: record.shape)
            XCTAssertEqual(count.flatMap { record.dtype.byteCount(elementCount: $0) }, record.bytes.count, file: source, line: line)
            total += record.bytes.count
        }
        let headerLength = bytes[0..<8].enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        XCTAssertEqual(total, bytes.count - 8 - headerLength, file: source, line: line)
    }

    func testEveryTruncationThrows() {
        XCTAssertGreaterThan(valid.count, 300)
        for length in 0..<valid.count {
            XCTAssertNotNil(decodeError(Array(valid[0..<length])), "prefix of \(length) bytes was accepted")
        }
    }

    func testEveryByteFlipThrowsOrParsesConsistently() throws {
        let headerEnd = 8 + Int(valid[0]) + Int(valid[1]) << 8
        var thrown = 0
        var parsed = 0
        for position in 0..<valid.count {
            for mask: UInt8 in [0x01, 0x02, 0x08, 0x20, 0x40, 0x80, 0xFF] {
                var bytes = valid
                bytes[position] ^= mask
                do {
                    let file = try SafeTensorsFile.decode(bytes, allowingUnsupportedDTypes: true)
                    assertConsistent(file, from: bytes)
                    parsed += 1
                } catch {
                    XCTAssertFalse(error.description.isEmpty)
                    thrown += 1
                    // Flips inside the data section never invalidate the file.
                    XCTAssertLessThan(position, headerEnd, "flip at data byte \(position) rejected: \(error)")
                }
            }
        }
        XCTAssertGreaterThan(thrown, 0)
        XCTAssertGreaterThan(parsed, 7 * (valid.count - headerEnd) - 1)
    }

    func testRandomHeadersNeverCrash() {
        var generator = SplitMix64(state: 42)
        let alphabet = Array("{}[]\":,0123456789-.eE \\uFI6t".utf8) + [0x80, 0xC3, 0x00]
        for _ in 0..<3000 {
            let length = Int.random(in: 0..<80, using: &generator)
            let header = (0..<length).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] }
            var bytes: [UInt8] = []
            withUnsafeBytes(of: UInt64(header.count).littleEndian) { bytes.append(contentsOf: $0) }
            bytes += header
            bytes += (0..<Int.random(in: 0..<16, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if let file = try? SafeTensorsFile.decode(bytes, allowingUnsupportedDTypes: true) {
                assertConsistent(file, from: bytes)
            }
        }
    }

    /// Mutating a valid header's text (random single-character substitutions) never crashes.
    func testHeaderCharacterSubstitutions() {
        var generator = SplitMix64(state: 9)
        let headerLength = Int(valid[0]) + Int(valid[1]) << 8
        let replacements = Array("0123456789[]{}\",:- e".utf8)
        for _ in 0..<4000 {
            var bytes = valid
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                bytes[8 + Int.random(in: 0..<headerLength, using: &generator)] =
                    replacements[Int.random(in: 0..<replacements.count, using: &generator)]
            }
            if let file = try? SafeTensorsFile.decode(bytes, allowingUnsupportedDTypes: true) {
                assertConsistent(file, from: bytes)
            }
        }
    }
}
