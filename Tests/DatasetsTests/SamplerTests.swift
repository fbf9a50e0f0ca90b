import XCTest
@testable import Datasets

final class SamplerTests: XCTestCase {
    // MARK: worked example (pitfalls F1)

    func testF1WorkedExampleShardsAndPadding() {
        let shards = (0..<4).map {
            DistributedSampler(datasetSize: 10, rank: $0, worldSize: 4, shuffle: false).shard(epoch: 0)
        }
        XCTAssertEqual(shards.map { $0.map(\.id) }, [[0, 4, 8], [1, 5, 9], [2, 6, 0], [3, 7, 1]])
        XCTAssertEqual(shards.map { $0.map(\.isPadding) },
                       [[false, false, false], [false, false, false], [false, false, true], [false, false, true]])
        XCTAssertEqual(shards.map { $0.map(\.description) },
                       [["0", "4", "8"], ["1", "5", "9"], ["2", "6", "0*"], ["3", "7", "1*"]])
        let sampler = DistributedSampler(datasetSize: 10, rank: 0, worldSize: 4, shuffle: false)
        XCTAssertEqual(sampler.samplesPerRank, 3)
        XCTAssertEqual(sampler.totalSize, 12)
        XCTAssertEqual(sampler.paddingCount, 2)
    }

    func testF1AccuracyIsHalfWhenPaddingDropped() {
        // A model that is right exactly on samples 0..4.
        var correct = 0, count = 0, paddedCorrect = 0, paddedCount = 0
        var gatheredIds = [Int]()
        for rank in 0..<4 {
            let sampler = DistributedSampler(datasetSize: 10, rank: rank, worldSize: 4, shuffle: false)
            for batch in sampler.batches(epoch: 0, globalBatchSize: 4) {
                for (id, pad) in zip(batch.ids, batch.isPadding) {
                    let right = id < 5 ? 1 : 0
                    paddedCorrect += right; paddedCount += 1
                    if !pad { correct += right; count += 1; gatheredIds.append(id) }
                }
            }
        }
        XCTAssertEqual(Double(correct) / Double(count), 0.5)
        XCTAssertEqual(gatheredIds.sorted(), Array(0..<10))
        // The naive (padded) count is what the fault gives: 7/12.
        XCTAssertEqual(paddedCorrect, 7)
        XCTAssertEqual(paddedCount, 12)
    }

    func testDocumentedGlobalBatchDealingWhenWorldSizeDoesNotDivideBatch() {
        let batches = (0..<4).map {
            DistributedSampler(datasetSize: 10, rank: $0, worldSize: 4, shuffle: false)
                .batches(epoch: 0, globalBatchSize: 6)
        }
        XCTAssertEqual(batches.map { $0.map(\.ids) },
                       [[[0, 4], [8]], [[1, 5], [9]], [[2], [6, 0]], [[3], [7, 1]]])
        XCTAssertEqual(batches[2][1].isPadding, [false, true])
        XCTAssertEqual(batches[3][1].isPadding, [false, true])
        for rankBatches in batches {
            XCTAssertEqual(rankBatches.map(\.globalCount), [6, 6])
            XCTAssertEqual(rankBatches.map(\.globalRealCount), [6, 4])
        }
    }

    func testDropLastExample() {
        let shards = (0..<4).map {
            DistributedSampler(datasetSize: 10, rank: $0, worldSize: 4, shuffle: false, dropLast: true).shard(epoch: 0)
        }
        XCTAssertEqual(shards.map { $0.map(\.id) }, [[0, 4], [1, 5], [2, 6], [3, 7]])
        XCTAssertFalse(shards.joined().contains { $0.isPadding })
    }

    func testMoreRanksThanSamplesWrapsRepeatedly() {
        // PyTorch: indices += (indices * ceil(pad / N))[:pad]  ->  entry p is perm[p % N].
        let order = DistributedSampler(datasetSize: 2, rank: 0, worldSize: 5, shuffle: false).globalOrder(epoch: 0)
        XCTAssertEqual(order.map(\.description), ["0", "1", "0*", "1*", "0*"])
        let empty = DistributedSampler(datasetSize: 2, rank: 4, worldSize: 5, shuffle: false, dropLast: true)
        XCTAssertEqual(empty.samplesPerRank, 0)
        XCTAssertEqual(empty.batches(epoch: 0, globalBatchSize: 3).count, 0)
    }

    // MARK: invariants over ranks, sizes and options

    func testShardInvariantsForOneToFiveRanks() {
        for worldSize in 1...5 {
            for n in [1, 2, 7, 10, 11, 13, 23, 64] {
                for shuffle in [false, true] {
                    for dropLast in [false, true] {
                        for batchSize in [1, 3, 4, 8] {
                            checkInvariants(n: n, worldSize: worldSize, shuffle: shuffle, dropLast: dropLast,
                                            batchSize: batchSize, epoch: 3)
                        }
                    }
                }
            }
        }
    }

    private func checkInvariants(n: Int, worldSize: Int, shuffle: Bool, dropLast: Bool, batchSize: Int, epoch: Int,
                                 file: StaticString = #filePath, line: UInt = #line) {
        let label = "N=\(n) W=\(worldSize) shuffle=\(shuffle) dropLast=\(dropLast) B=\(batchSize)"
        let samplers = (0..<worldSize).map {
            DistributedSampler(datasetSize: n, rank: $0, worldSize: worldSize, shuffle: shuffle, seed: 42, dropLast: dropLast)
        }
        let shards = samplers.map { $0.shard(epoch: epoch) }
        let allBatches = samplers.map { $0.batches(epoch: epoch, globalBatchSize: batchSize) }

        // Equal shard lengths and equal step counts.
        let expectedPerRank = dropLast ? n / worldSize : (n + worldSize - 1) / worldSize
        XCTAssertEqual(Set(shards.map(\.count)), [expectedPerRank], label, file: file, line: line)
        let steps = (expectedPerRank * worldSize + batchSize - 1) / batchSize
        XCTAssertEqual(Set(allBatches.map(\.count)), [steps], label, file: file, line: line)

        // Non-padding entries are disjoint; with padding they cover everything exactly once.
        let real = shards.joined().filter { !$0.isPadding }.map(\.id)
        XCTAssertEqual(Set(real).count, real.count, "duplicate real entries: \(label)", file: file, line: line)
        if dropLast {
            XCTAssertEqual(real.count, expectedPerRank * worldSize, label, file: file, line: line)
            XCTAssertTrue(Set(real).isSubset(of: 0..<n), label, file: file, line: line)
        } else {
            XCTAssertEqual(real.sorted(), Array(0..<n), "union must cover every sample: \(label)", file: file, line: line)
            let padding = shards.joined().filter(\.isPadding)
            XCTAssertEqual(padding.count, expectedPerRank * worldSize - n, label, file: file, line: line)
        }

        // Each rank's batches concatenate to its shard, batch sizes within a step differ by <= 1,
        // and the per-step global counts agree with the sum over ranks.
        for r in 0..<worldSize {
            let flat = allBatches[r].flatMap { zip($0.ids, $0.isPadding).map { ShardEntry(position: $0.0, id: $0.0, isPadding: $0.1) } }
            XCTAssertEqual(flat, shards[r], label, file: file, line: line)
        }
        for s in 0..<steps {
            let step = allBatches.map { $0[s] }
            XCTAssertEqual(Set(step.map(\.globalCount)).count, 1, label, file: file, line: line)
            XCTAssertEqual(step.map(\.count).reduce(0, +), step[0].globalCount, label, file: file, line: line)
            XCTAssertEqual(step.map(\.realCount).reduce(0, +), step[0].globalRealCount, label, file: file, line: line)
            let sizes = step.map(\.count)
            XCTAssertLessThanOrEqual(sizes.max()! - sizes.min()!, 1, label, file: file, line: line)
        }
    }

    func testNoShuffleIsIdentityAndShuffleIsAPermutation() {
        let plain = DistributedSampler(datasetSize: 37, rank: 0, worldSize: 1, shuffle: false)
        XCTAssertEqual(plain.permutation(epoch: 5), Array(0..<37))
        let shuffled = DistributedSampler(datasetSize: 37, rank: 0, worldSize: 1, shuffle: true, seed: 9)
        let perm = shuffled.permutation(epoch: 5)
        XCTAssertEqual(perm.sorted(), Array(0..<37))
        XCTAssertNotEqual(perm, Array(0..<37))
    }

    func testDeterministicForSeedAndEpochAndIndependentOfRankAndWorldSize() {
        let a = DistributedSampler(datasetSize: 100, rank: 0, worldSize: 1, seed: 7)
        let b = DistributedSampler(datasetSize: 100, rank: 2, worldSize: 3, seed: 7)
        XCTAssertEqual(a.permutation(epoch: 4), b.permutation(epoch: 4))
        XCTAssertEqual(a.permutation(epoch: 4), DistributedSampler(datasetSize: 100, rank: 0, worldSize: 1, seed: 7).permutation(epoch: 4))
        // Rank 2 of 3 sees exactly the strided slice of that common permutation.
        let perm = a.permutation(epoch: 4)
        XCTAssertEqual(b.shard(epoch: 4).map(\.id), Array(stride(from: 2, to: 102, by: 3).map { perm[$0 % 100] }))
    }

    func testOrderChangesBetweenEpochsAndSeeds() {
        let s = DistributedSampler(datasetSize: 100, rank: 0, worldSize: 2, seed: 7)
        let epochs = (0..<5).map { s.shard(epoch: $0).map(\.id) }
        XCTAssertEqual(Set(epochs).count, 5, "every epoch must give a new order")
        let other = DistributedSampler(datasetSize: 100, rank: 0, worldSize: 2, seed: 8)
        XCTAssertNotEqual(s.permutation(epoch: 0), other.permutation(epoch: 0))
        // seed/epoch are not simply added: (seed 7, epoch 1) differs from (seed 8, epoch 0).
        XCTAssertNotEqual(s.permutation(epoch: 1), other.permutation(epoch: 0))
    }

    func testSubsetIdsAreCarried() {
        let ids = [5, 17, 2, 40, 8]
        let s = DistributedSampler(ids: ids, rank: 1, worldSize: 2, shuffle: false)
        let batches = s.batches(epoch: 0, globalBatchSize: 4)
        XCTAssertEqual(batches.map(\.positions), [[1, 3], [0]])
        XCTAssertEqual(batches.map(\.ids), [[17, 40], [5]])
        XCTAssertEqual(batches.map(\.isPadding), [[false, false], [true]])
    }

    func testDropIncompleteBatch() {
        let s = DistributedSampler(datasetSize: 10, rank: 0, worldSize: 2, shuffle: false)
        XCTAssertEqual(s.stepsPerEpoch(globalBatchSize: 4), 3)
        XCTAssertEqual(s.stepsPerEpoch(globalBatchSize: 4, dropIncompleteBatch: true), 2)
        XCTAssertEqual(s.batches(epoch: 0, globalBatchSize: 4, dropIncompleteBatch: true).map(\.ids), [[0, 2], [4, 6]])
    }
}
