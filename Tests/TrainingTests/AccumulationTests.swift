import Datasets
import Distributed
import Foundation
import NeuralNetwork
import TensorCore
@testable import Training
import UnleashingMask
import XCTest

/// Gradient accumulation (`train.accumulation_steps`): K micro-batches of B per optimizer step
/// give the update of one batch of K x B, for plain cross-entropy, for UM's flooding (whose sign
/// must come from the whole effective batch) and for the atypical-only ablation. LeNet has no
/// BatchNorm, so the two runs differ only by summation order (BatchNorm statistics would be per
/// micro-batch, by design).
final class AccumulationTests: XCTestCase {
    /// 128 grey 28x28 images, class = the bright quadrant.
    static func data() -> TrainingData {
        var rng = SplitMix64(seed: 9)
        let n = 128
        var images = [UInt8](repeating: 0, count: n * 784)
        for i in 0..<n {
            for p in 0..<784 {
                let top = p / 28 < 14, left = p % 28 < 14
                let bright = [top && left, top && !left, !top && left, !top && !left][i % 4]
                images[i * 784 + p] = UInt8(truncatingIfNeeded: Int(rng.next() % 90) + (bright ? 120 : 0))
            }
        }
        let ds = ImageDataset(images: images, labels: (0..<n).map { $0 % 4 }, channels: 1, height: 28, width: 28, classCount: 4)
        return TrainingData(trainSet: ds, trainIds: Array(0..<n), validationIds: [], testSet: ds,
                            normalizer: ChannelNormalizer(mean: [0.35], std: [0.3]))
    }

    func config(batch: Int, accumulation: Int) -> RunConfig {
        var c = RunConfig()
        c.model.arch = .lenet
        c.model.imageSize = 28
        c.model.numClasses = 4
        c.train.epochs = 3
        c.train.batchSize = batch
        c.train.accumulationSteps = accumulation
        c.train.lr = 0.05
        c.train.schedule = .cosine
        c.train.perStepSchedule = true
        c.train.checkpointEvery = 0
        return c
    }

    /// Trains and returns the final parameters and the logged per-epoch losses.
    func run(_ c: RunConfig, transform: LossTransform? = nil) throws -> (weights: [Float], log: [String]) {
        let model = try ModelFactory.make(c.model, seed: 1)
        var lines: [String] = []
        let t = try Trainer(config: c, comm: LocalCommunicator(), model: model, data: Self.data(), folder: nil, log: { lines.append($0) })
        t.lossTransform = transform
        try t.train(evaluateEachEpoch: false)
        return (model.parameters.flatMap { $0.value.scalars }, lines)
    }

    func assertClose(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        var worst: Float = 0
        for (x, y) in zip(a, b) { worst = max(worst, abs(x - y) / max(1e-3, abs(y))) }
        XCTAssertLessThan(worst, 2e-4, "\(what): largest relative difference \(worst)", file: file, line: line)
    }

    func maxDifference(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? 0 }

    func testFourMicroBatchesEqualOneBatchOfFourTimesTheSize() throws {
        let accumulated = try run(config(batch: 16, accumulation: 4))
        let whole = try run(config(batch: 64, accumulation: 1))
        assertClose(accumulated.weights, whole.weights, "CE, 4 x 16 vs 64")
        let small = try run(config(batch: 16, accumulation: 1))
        XCTAssertGreaterThan(maxDifference(small.weights, whole.weights), 1e-3, "negative control: batch 16 without accumulation differs")
        XCTAssertTrue(accumulated.log.contains { $0.contains("step 2/2") }, "progress counts optimizer steps: \(accumulated.log)")
    }

    func testFloodingSignComesFromTheEffectiveBatch() throws {
        // xi near the initial loss (ln 4 = 1.386), so micro-batch means fall on both sides of it.
        let flooding = Flooding(xi: 1.3855)
        let accumulated = try run(config(batch: 16, accumulation: 4), transform: flooding)
        let whole = try run(config(batch: 64, accumulation: 1), transform: flooding)
        assertClose(accumulated.weights, whole.weights, "UM flooding, 4 x 16 vs 64")
        let ce = try run(config(batch: 64, accumulation: 1))
        XCTAssertGreaterThan(maxDifference(ce.weights, whole.weights), 1e-3, "flooding must change the run at this xi")
    }

    func testAtypicalOnlyAblationAccumulates() throws {
        let flooding = Flooding(xi: 1.3855, atypicalIDs: Set((0..<128).filter { $0 % 3 == 0 }.map(Int64.init)))
        let accumulated = try run(config(batch: 16, accumulation: 4), transform: flooding)
        let whole = try run(config(batch: 64, accumulation: 1), transform: flooding)
        assertClose(accumulated.weights, whole.weights, "atypical-only flooding, 4 x 16 vs 64")
    }

    func testLinearScalingUsesTheEffectiveBatch() {
        var c = config(batch: 16, accumulation: 4)
        c.train.lrScaling = .linear
        c.train.referenceBatchSize = 64
        XCTAssertEqual(c.effectiveLearningRate, 0.05)
    }
}
