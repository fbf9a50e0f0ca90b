import Foundation
import XCTest
@testable import SafeTensors

/// Directory of committed fixtures, located from this source file (not SwiftPM resources).
func fixturePath(_ name: String, file: StaticString = #filePath) -> String {
    URL(fileURLWithPath: "\(file)").deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(name).path
}

/// The contents of Fixtures/reference.safetensors, built the same way as `expected_tensors()` in
/// Fixtures/make_fixture.py. Values not exact in binary are given as the float32 bit patterns
/// numpy produced (0.1 -> 0x3dcccccd, 3e-39 -> 0x0020aac8).
func referenceFile() -> SafeTensorsFile {
    SafeTensorsFile(records: [
        SafeTensorsRecord(name: "conv1.weight", shape: [2, 3, 2, 2], floats: (0..<24).map { (Float($0) - 12) / 8 }),
        SafeTensorsRecord(name: "fc.bias", shape: [3],
                          floats: [Float(bitPattern: 0x3DCC_CCCD), -2.5, Float(bitPattern: 0x0020_AAC8)]),
        SafeTensorsRecord(name: "scale", shape: [], floats: [1.5]),
        SafeTensorsRecord(name: "specials", shape: [5],
                          floats: [0x7FC0_0001, 0x8000_0000, 0x0000_0001, 0x7F80_0000, 0xFF7F_FFFF].map(Float.init(bitPattern:))),
        SafeTensorsRecord(name: "bn1.num_batches_tracked", shape: [], int64s: [12_345_678_901_234]),
        SafeTensorsRecord(name: "indices", shape: [4], int64s: [.min, -1, 0, .max]),
        SafeTensorsRecord(name: "empty", shape: [0, 3], floats: []),
    ], metadata: [
        "architecture": "resnet18",
        "num_classes": "10",
        "note": "µ-ü \"quoted\" \\ slash\nnewline",
    ])
}

/// Builds a raw safetensors file from a header string (unpadded) and data bytes.
func rawFile(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let headerBytes = Array(header.utf8)
    var bytes: [UInt8] = []
    withUnsafeBytes(of: (declaredLength ?? UInt64(headerBytes.count)).littleEndian) { bytes.append(contentsOf: $0) }
    return bytes + headerBytes + data
}

/// Asserts that decoding `bytes` throws, returning the error for further checks.
@discardableResult
func decodeError(_ bytes: [UInt8], source: String = "test.safetensors", allowingUnsupported: Bool = false,
                 file: StaticString = #filePath, line: UInt = #line) -> SafeTensorsError? {
    do {
        let decoded = try SafeTensorsFile.decode(bytes, source: source, allowingUnsupportedDTypes: allowingUnsupported)
        XCTFail("expected an error, decoded \(decoded.names)", file: file, line: line)
        return nil
    } catch {
        return error
    }
}

/// Asserts that `message` contains every fragment and ends with a hint sentence.
func assertMessage(_ error: SafeTensorsError?, contains fragments: [String],
                   file: StaticString = #filePath, line: UInt = #line) {
    guard let error else { return }
    let message = error.description
    for fragment in fragments {
        XCTAssertTrue(message.contains(fragment), "message lacks \"\(fragment)\": \(message)", file: file, line: line)
    }
    XCTAssertTrue(message.contains("Hint: "), "message lacks a hint: \(message)", file: file, line: line)
}

func floatBits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

/// A fresh temporary directory, removed at the end of the test.
func makeTemporaryDirectory(_ testCase: XCTestCase) throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("safetensors-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    testCase.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url.path
}

/// Deterministic SplitMix64 generator for fuzz inputs (state is local to each test).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
