import Distributed
import XCTest

final class GradientBucketTests: XCTestCase {
    func testBucketsAreReversedContiguousAndCapped() {
        // Sizes in floats; caps: first 100 bytes = 25 floats, then 200 bytes = 50 floats.
        let sizes = [10, 30, 5, 20, 8, 12]
        let b = planGradientBuckets(sizes: sizes, firstBucketBytes: 100, bucketBytes: 200)
        // Reverse order: 12, 8 (20 <= 25), then 20 would exceed -> close. Then 20, 5 (25), 30 would exceed 50? 55 > 50 -> close.
        XCTAssertEqual(b.map(\.parameterIndices), [[5, 4], [3, 2], [1, 0]])
        XCTAssertEqual(b.map(\.offset), [65, 40, 0])
        XCTAssertEqual(b.map(\.count), [20, 25, 40])
        // Every element covered exactly once.
        XCTAssertEqual(b.map(\.count).reduce(0, +), sizes.reduce(0, +))
    }

    func testOversizedParameterGetsItsOwnBucketAndZeroSizesAreSkipped() {
        let b = planGradientBuckets(sizes: [4, 0, 1000, 3], firstBucketBytes: 16, bucketBytes: 32)
        XCTAssertEqual(b.map(\.parameterIndices), [[3], [2], [0]])
        XCTAssertEqual(b.map(\.count), [3, 1000, 4])
    }

    func testReducerOnOneRankLeavesArenaUnchanged() throws {
        var arena: [Float] = [1, 2, 3, 4]
        let r = GradientReducer(buckets: planGradientBuckets(sizes: [2, 2]))
        try arena.withUnsafeMutableBufferPointer { try r.reduce($0, comm: LocalCommunicator()) }
        XCTAssertEqual(arena, [1, 2, 3, 4])
    }
}

final class RankConsistencyTests: XCTestCase {
    func testChecksumSeesBitsNotValues() {
        let a: [Float] = [0.0, 1.5]
        let b: [Float] = [-0.0, 1.5]
        let ca = a.withUnsafeBufferPointer { RankConsistency.checksum($0) }
        let cb = b.withUnsafeBufferPointer { RankConsistency.checksum($0) }
        XCTAssertNotEqual(ca, cb, "0.0 and -0.0 have different bits")
        XCTAssertEqual(ca, a.withUnsafeBufferPointer { RankConsistency.checksum($0) })
        XCTAssertNotEqual(RankConsistency.checksum([Int64(1)]), RankConsistency.checksum([Int64(2)]))
    }

    func testCompareOnOneRankIsClean() throws {
        XCTAssertNil(try RankConsistency.compare(names: ["w", "b"], checksums: [1, 2], comm: LocalCommunicator()))
    }
}
