import Foundation
import XCTest
@testable import Datasets

/// A source whose sample `failAt` throws, counting calls; for error propagation.
private struct FailingSource: BatchSource {
    let inner: InMemorySource
    let failAt: Int
    var count: Int { inner.count }
    var channels: Int { inner.channels }
    var height: Int { inner.height }
    var width: Int { inner.width }
    func label(at position: Int) -> Int { inner.label(at: position) }
    func id(at position: Int) -> Int { inner.id(at: position) }
    func sample(at position: Int, epoch: Int, into destination: UnsafeMutableBufferPointer<UInt8>) throws {
        if position == failAt { throw ImageFileError.corruptImage(path: "sample\(position).jpg", format: "JPEG", message: "test") }
        try inner.sample(at: position, epoch: epoch, into: destination)
    }
}

final class BatchLoaderTests: XCTestCase {
    private func dataset(count: Int = 50) -> ImageDataset {
        var images = [UInt8](repeating: 0, count: count * 2 * 6 * 5)
        for i in 0..<images.count { images[i] = UInt8((i * 7 + i / 60) % 256) }
        return ImageDataset(images: images, labels: (0..<count).map { $0 % 3 }, ids: (0..<count).map { 1000 + $0 },
                            channels: 2, height: 6, width: 5, classCount: 3)
    }

    private let normalizer = ChannelNormalizer(mean: [0.5, 0.25], std: [0.2, 0.3])

    func testLoaderEqualsTheSynchronousAugmentedNormalizedBatches() throws {
        let data = dataset()
        let augmentation = Augmentation(cropPadding: 2, horizontalFlip: true, seed: 9)
        let sampler = DistributedSampler(ids: data.ids, rank: 1, worldSize: 3, shuffle: true, seed: 4)
        var plans: [BatchPlan] = []
        for epoch in 0..<3 {
            plans += sampler.batches(epoch: epoch, globalBatchSize: 12).map { BatchPlan(epoch: epoch, batch: $0) }
        }
        let loader = BatchLoader(source: InMemorySource(data, augmentation: augmentation), plans: plans,
                                 normalizer: normalizer, prefetch: 2)
        var seen = 0
        while let batch = try loader.next() {
            let plan = plans[seen]
            var expected = [Float](repeating: .nan, count: plan.positions.count * data.sampleBytes)
            expected.withUnsafeMutableBufferPointer {
                data.augmentedNormalizedBatch(positions: plan.positions, augmentation: augmentation, epoch: plan.epoch,
                                              normalizer: normalizer, into: $0)
            }
            XCTAssertEqual(batch.images, expected, "batch \(seen)")
            XCTAssertEqual(batch.labels, data.labels(at: plan.positions))
            XCTAssertEqual(batch.ids, plan.positions.map { data.ids[$0] })
            XCTAssertEqual(batch.epoch, plan.epoch)
            XCTAssertEqual(batch.step, plan.step)
            seen += 1
        }
        XCTAssertEqual(seen, plans.count)
        XCTAssertNil(try loader.next(), "stays finished")
    }

    func testUnaugmentedLoaderEqualsNormalizedBatch() throws {
        let data = dataset(count: 20)
        let plans = [BatchPlan(epoch: 0, step: 0, positions: [3, 1, 19]), BatchPlan(epoch: 0, step: 1, positions: []),
                     BatchPlan(epoch: 0, step: 2, positions: [0])]
        let loader = BatchLoader(source: InMemorySource(data), plans: plans, normalizer: normalizer)
        for plan in plans {
            let batch = try XCTUnwrap(try loader.next())
            var expected = [Float](repeating: .nan, count: plan.positions.count * data.sampleBytes)
            expected.withUnsafeMutableBufferPointer { data.normalizedBatch(positions: plan.positions, normalizer: normalizer, into: $0) }
            XCTAssertEqual(batch.images, expected)
            XCTAssertEqual(batch.count, plan.positions.count)
        }
        XCTAssertNil(try loader.next())
    }

    func testAugmentationDoesNotDependOnRankOrWorldSize() throws {
        // Every sample's augmented tensor is the same whether one rank or three load it.
        let data = dataset(count: 30)
        let source = InMemorySource(data, augmentation: Augmentation(cropPadding: 3, seed: 5))
        func byId(worldSize: Int) throws -> [Int: [Float]] {
            var result: [Int: [Float]] = [:]
            for rank in 0..<worldSize {
                let sampler = DistributedSampler(ids: data.ids, rank: rank, worldSize: worldSize, seed: 2)
                let plans = sampler.batches(epoch: 1, globalBatchSize: 8).map { BatchPlan(epoch: 1, batch: $0) }
                let loader = BatchLoader(source: source, plans: plans, normalizer: normalizer)
                while let b = try loader.next() {
                    for (k, id) in b.ids.enumerated() {
                        result[id] = Array(b.images[k * data.sampleBytes ..< (k + 1) * data.sampleBytes])
                    }
                }
            }
            return result
        }
        let one = try byId(worldSize: 1), three = try byId(worldSize: 3)
        XCTAssertEqual(one.count, 30)
        XCTAssertEqual(one, three)
    }

    func testRandomResizedCropLoaderIsRankIndependent() throws {
        let root = try ImageFixtures.temporaryDirectory(self)
        for i in 0..<6 {
            try ImageFixtures.writePNG(ImageFixtures.pattern(channels: 3, height: 20 + i, width: 24, salt: i), to: root + "/\(i).png")
        }
        let source = try LazyImageFolder(root: root, layout: .flat, channels: 3,
                                         evaluation: ResizeCenterCrop(resizeShorterSide: 8, cropSize: 8),
                                         training: RandomResizedCrop(size: 8, seed: 21))
        let norm = ChannelNormalizer(mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5])
        var seen: [Int: [Float]] = [:]
        for worldSize in [1, 2] {
            for rank in 0..<worldSize {
                let sampler = DistributedSampler(datasetSize: 6, rank: rank, worldSize: worldSize, seed: 1)
                let plans = sampler.batches(epoch: 0, globalBatchSize: 4).map { BatchPlan(epoch: 0, batch: $0) }
                let loader = BatchLoader(source: source, plans: plans, normalizer: norm)
                while let b = try loader.next() {
                    for (k, id) in b.ids.enumerated() {
                        let x = Array(b.images[k * 192 ..< (k + 1) * 192])
                        if let previous = seen[id] { XCTAssertEqual(previous, x, "id \(id)") } else { seen[id] = x }
                    }
                }
            }
        }
        XCTAssertEqual(seen.count, 6)
    }

    func testDecodeErrorReachesTheConsumerAfterTheGoodBatches() throws {
        let data = dataset(count: 12)
        let plans = (0..<4).map { BatchPlan(epoch: 0, step: $0, positions: [3 * $0, 3 * $0 + 1, 3 * $0 + 2]) }
        let loader = BatchLoader(source: FailingSource(inner: InMemorySource(data), failAt: 7), plans: plans,
                                 normalizer: normalizer, prefetch: 1)
        XCTAssertEqual(try loader.next()?.step, 0)
        XCTAssertEqual(try loader.next()?.step, 1)
        for _ in 0..<2 {
            XCTAssertThrowsError(try loader.next()) { error in
                XCTAssertEqual(error as? ImageFileError, .corruptImage(path: "sample7.jpg", format: "JPEG", message: "test"))
            }
        }
    }

    private func threadCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 0
    }

    func testCancelStopsTheThreadWithoutConsumingEverything() throws {
        let threadsBefore = threadCount()
        let data = dataset(count: 50)
        let plans = (0..<1000).map { BatchPlan(epoch: $0, step: 0, positions: Array(0..<50)) }
        for _ in 0..<20 {
            let loader = BatchLoader(source: InMemorySource(data), plans: plans, normalizer: normalizer, prefetch: 2)
            _ = try loader.next()
            loader.cancel()
            XCTAssertNil(try loader.next(), "nothing after cancel")
            loader.cancel()   // idempotent
        }
        // Dropping an unconsumed loader (deinit) also returns promptly.
        for _ in 0..<20 {
            _ = BatchLoader(source: InMemorySource(data), plans: plans, normalizer: normalizer, prefetch: 2)
        }
        // 40 loaders later, no loader thread is left (Linux: one /proc/self/task entry per thread).
        // Allow a little slack for threads the runtime starts on its own.
        #if os(Linux)
        XCTAssertGreaterThan(threadsBefore, 0, "/proc/self/task not readable")
        XCTAssertLessThanOrEqual(threadCount(), threadsBefore + 2, "loader threads leaked")
        #endif
    }
}
