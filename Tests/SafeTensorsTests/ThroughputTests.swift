import Foundation
import XCTest
@testable import SafeTensors

/// Write + read of a ResNet-18-sized state dict (11.2M F32 values in 62 tensors + I64 counters).
/// Asserts exact values; prints MB/s (build configuration dependent, not asserted).
final class ThroughputTests: XCTestCase {
    func testResNet18SizedCheckpointRoundTrip() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/resnet18.safetensors"
        var records: [SafeTensorsRecord] = []
        var total = 0
        // 60 tensors of 186,000 values (= 11.16M) plus a final odd-sized one, and BN counters.
        for index in 0..<61 {
            let count = index == 60 ? 5_130 : 186_000
            let values = (0..<count).map { Float(bitPattern: UInt32(truncatingIfNeeded: $0 &* 2_654_435_761 &+ index)) }
            records.append(SafeTensorsRecord(name: "layer.\(index).weight", shape: [count], floats: values))
            records.append(SafeTensorsRecord(name: "layer.\(index).num_batches_tracked", shape: [], int64s: [Int64(index)]))
            total += count
        }
        let file = SafeTensorsFile(records: records, metadata: ["architecture": "resnet18"])
        let start = Date()
        try file.write(to: path)
        let written = Date()
        let loaded = try SafeTensorsFile.read(path: path)
        let read = Date()
        let converted = try loaded.records.filter { $0.dtype == .f32 }.map { try $0.floats() }
        let convertedAt = Date()
        var checksum: UInt64 = 0
        for values in converted {
            for value in values { checksum = checksum &* 31 &+ UInt64(value.bitPattern) }
        }
        var expected: UInt64 = 0
        for record in file.sortedForComparison where record.dtype == .f32 {
            for value in try record.floats() { expected = expected &* 31 &+ UInt64(value.bitPattern) }
        }
        XCTAssertEqual(checksum, expected)
        XCTAssertTrue(loaded.hasSameContents(as: file))
        let megabytes = Double(total * 4) / 1_000_000
        print(String(format: "safetensors throughput: %.1f MB, write %.0f MB/s, read %.0f MB/s, to [Float] %.0f MB/s",
                     megabytes, megabytes / written.timeIntervalSince(start), megabytes / read.timeIntervalSince(written),
                     megabytes / convertedAt.timeIntervalSince(read)))
    }
}

private extension SafeTensorsFile {
    /// Records in the order the reader returns them (the writer's data order).
    var sortedForComparison: [SafeTensorsRecord] {
        records.sorted { ($0.dtype.referenceRank, $1.name) > ($1.dtype.referenceRank, $0.name) }
    }
}
