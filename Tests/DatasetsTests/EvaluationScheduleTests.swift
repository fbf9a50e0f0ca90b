import XCTest
@testable import Datasets

final class EvaluationScheduleTests: XCTestCase {
    func testDocumentedExample() {
        let schedule = EvaluationSchedule(datasetSize: 10, batchSize: 3, worldSize: 3)
        XCTAssertEqual(schedule.batchCount, 4)
        XCTAssertEqual(schedule.roundCount, 2)
        XCTAssertEqual(schedule.batches(rank: 0).map(\.ids), [[0, 1, 2], [9]])
        XCTAssertEqual(schedule.batches(rank: 1).map(\.ids), [[3, 4, 5], []])
        XCTAssertEqual(schedule.batches(rank: 2).map(\.ids), [[6, 7, 8], []])
        XCTAssertEqual(schedule.batches(rank: 1).map(\.batchIndex), [1, nil])
    }

    func testBatchesIndependentOfWorldSizeAndCoverAllIdsInOrder() {
        for (n, b) in [(10, 3), (7, 7), (7, 8), (23, 4), (1, 1), (0, 5)] {
            var reference: [Int: [Int]]? = nil
            for worldSize in 1...3 {
                let schedule = EvaluationSchedule(datasetSize: n, batchSize: b, worldSize: worldSize)
                var byIndex = [Int: [Int]]()
                var rounds = Set<Int>()
                for rank in 0..<worldSize {
                    let batches = schedule.batches(rank: rank)
                    rounds.insert(batches.count)
                    for (round, batch) in batches.enumerated() {
                        XCTAssertEqual(batch.round, round)
                        if let k = batch.batchIndex {
                            XCTAssertEqual(k % worldSize, rank, "batch k goes to rank k % W")
                            XCTAssertNil(byIndex[k], "batch \(k) dealt twice")
                            byIndex[k] = batch.ids
                            XCTAssertEqual(Array(batch.positions), batch.ids)
                        } else {
                            XCTAssertTrue(batch.isEmpty)
                            XCTAssertEqual(round, batches.count - 1, "empty batches only in the last round")
                        }
                    }
                }
                XCTAssertLessThanOrEqual(rounds.count, 1, "every rank runs the same number of rounds")
                let union = byIndex.keys.sorted().flatMap { byIndex[$0]! }
                XCTAssertEqual(union, Array(0..<n), "N=\(n) B=\(b) W=\(worldSize)")
                for (k, ids) in byIndex { XCTAssertEqual(ids, Array((k * b) ..< min((k + 1) * b, n))) }
                if let reference { XCTAssertEqual(byIndex, reference, "batches must not depend on W") }
                reference = byIndex
            }
        }
    }

    func testIdsOfSubset() {
        let schedule = EvaluationSchedule(ids: [10, 11, 20, 21, 30], batchSize: 2, worldSize: 2)
        XCTAssertEqual(schedule.batches(rank: 0).map(\.ids), [[10, 11], [30]])
        XCTAssertEqual(schedule.batches(rank: 1).map(\.ids), [[20, 21], []])
    }
}
