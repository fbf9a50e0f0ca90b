import Datasets
import Distributed
import NeuralNetwork
import OODDetection
import TensorCore
@testable import Training
import XCTest

/// Detector tuning on the validation split: the KNN k and ReAct percentile chosen by `tune`
/// (features extracted once) must be the argmax of the mean validation AUROC computed the
/// direct way (a full `fit` per candidate).
final class TuningTests: XCTestCase {
    func testTunedKAndPercentileAreTheArgmaxOfTheDirectSearch() throws {
        let ds = QuadrantImages.make(count: 160, seed: 21, noise: 120, brightness: 120)
        var rng = SplitMix64(seed: 21)
        for _ in 0..<(160 * 64) { _ = rng.next() }  // continue the stream for the noise set, as before
        let data = TrainingData(trainSet: ds, trainIds: Array(0..<120), validationIds: Array(120..<160), testSet: ds,
                                normalizer: ChannelNormalizer(mean: [0.4], std: [0.3]))
        var noise = [UInt8](repeating: 0, count: 50 * 64)
        for i in 0..<noise.count { noise[i] = UInt8(truncatingIfNeeded: rng.next()) }
        let ood = [OODSet(name: "noise-val", synthetic: false,
                          dataset: ImageDataset(images: noise, labels: [Int](repeating: 0, count: 50), channels: 1, height: 8, width: 8, classCount: 1))]
        var c = RunConfig()
        c.model.arch = .cnn5
        c.model.width = 4
        c.model.imageSize = 8
        c.model.numClasses = 4
        c.evaluate.scores = [.knn, .react]
        c.evaluate.batchSize = 16
        let model = try ModelFactory.make(c.model, seed: 2)
        let comm = LocalCommunicator()
        let (tuned, record) = try OODEvaluation.tune(model: model, comm: comm, config: c, data: data, validationOOD: ood, log: { _ in })

        func direct(_ kind: ScoreKind, _ e: EvaluateSection) throws -> Double {
            let fitted = try OODEvaluation.fit(model: model, comm: comm, data: data, e: e, kinds: [kind], numClasses: 4)
            let id = try OODEvaluation.score(model: model, comm: comm, data: data, dataset: data.trainSet, ids: data.validationIds,
                                             e: e, fitted: fitted, kinds: [kind]).scores[kind]!
            let o = try OODEvaluation.score(model: model, comm: comm, data: data, dataset: ood[0].dataset, ids: ood[0].dataset.ids,
                                            e: e, fitted: fitted, kinds: [kind]).scores[kind]!
            return try OODMetrics.compute(idScores: id, oodScores: o, fprMode: .strict, nonFinite: .exclude).auroc
        }
        var seen: [Double] = []
        var bestK = (k: 0, v: -Double.infinity)
        for k in [1, 5, 10, 20, 50, 100] {
            var e = c.evaluate
            e.knnK = k
            let v = try direct(.knn, e)
            seen.append(v)
            if v > bestK.v { bestK = (k, v) }
        }
        var bestP = (p: 0.0, v: -Double.infinity)
        for p in [80.0, 85, 90, 95, 99] {
            var e = c.evaluate
            e.reactPercentile = p
            let v = try direct(.react, e)
            seen.append(v)
            if v > bestP.v { bestP = (p, v) }
        }
        XCTAssertGreaterThan(Set(seen.prefix(6)).count, 1, "the k candidates must give different AUROCs: \(seen)")
        XCTAssertGreaterThan(Set(seen.suffix(5)).count, 1, "the percentiles must give different AUROCs: \(seen)")
        XCTAssertEqual(tuned.knnK, bestK.k)
        XCTAssertEqual(tuned.reactPercentile, bestP.p)
        XCTAssertEqual(record.knn?.value, bestK.v)
        XCTAssertEqual(record.react?.value, bestP.v)
    }

    /// GEN, ASH and SCALE tuned from cached validation features equal the argmax of the direct
    /// search (a full scoring pass per candidate), and the chosen settings are recorded.
    func testShapingScoresTunedAsTheDirectSearch() throws {
        let ds = QuadrantImages.make(count: 160, seed: 5, noise: 120, brightness: 120)
        var rng = SplitMix64(seed: 5)
        let data = TrainingData(trainSet: ds, trainIds: Array(0..<120), validationIds: Array(120..<160), testSet: ds,
                                normalizer: ChannelNormalizer(mean: [0.4], std: [0.3]))
        var noise = [UInt8](repeating: 0, count: 50 * 64)
        for i in 0..<noise.count { noise[i] = UInt8(truncatingIfNeeded: rng.next() >> 7) }
        let ood = [OODSet(name: "noise-val", synthetic: false,
                          dataset: ImageDataset(images: noise, labels: [Int](repeating: 0, count: 50), channels: 1, height: 8, width: 8, classCount: 1))]
        var c = QuadrantImages.config(epochs: 1)
        c.evaluate.scores = [.gen, .ash, .scale]
        c.evaluate.batchSize = 16
        let model = try ModelFactory.make(c.model, seed: 3)
        let comm = LocalCommunicator()
        let (tuned, record) = try OODEvaluation.tune(model: model, comm: comm, config: c, data: data, validationOOD: ood, log: { _ in })
        func direct(_ kind: ScoreKind, _ e: EvaluateSection) throws -> Double {
            let id = try OODEvaluation.score(model: model, comm: comm, data: data, dataset: data.trainSet, ids: data.validationIds,
                                             e: e, fitted: OODEvaluation.Fitted(), kinds: [kind]).scores[kind]!
            let o = try OODEvaluation.score(model: model, comm: comm, data: data, dataset: ood[0].dataset, ids: ood[0].dataset.ids,
                                            e: e, fitted: OODEvaluation.Fitted(), kinds: [kind]).scores[kind]!
            return try OODMetrics.compute(idScores: id, oodScores: o, fprMode: .strict, nonFinite: .exclude).auroc
        }
        var bestGEN = (g: 0.0, m: 0, v: -Double.infinity)
        var genValues: Set<Double> = []
        for g in [0.01, 0.1, 0.5, 1, 2, 5, 10] {
            var e = c.evaluate
            e.genGamma = g
            e.genM = 4  // every M in OpenOOD's list caps at the 4 classes
            let v = try direct(.gen, e)
            genValues.insert(v)
            if v > bestGEN.v { bestGEN = (g, 4, v) }
        }
        XCTAssertGreaterThan(genValues.count, 1, "gamma must matter on this problem")
        XCTAssertEqual(tuned.genGamma, bestGEN.g)
        XCTAssertEqual(tuned.genM, 4)
        XCTAssertEqual(record.gen?.value, bestGEN.v)
        for kind in [ScoreKind.ash, .scale] {
            var bestP = (p: 0.0, v: -Double.infinity)
            for p in [65.0, 70, 75, 80, 85, 90, 95] {
                var e = c.evaluate
                if kind == .ash { e.ashPercentile = p } else { e.scalePercentile = p }
                let v = try direct(kind, e)
                if v > bestP.v { bestP = (p, v) }
            }
            XCTAssertEqual(kind == .ash ? tuned.ashPercentile : tuned.scalePercentile, bestP.p, "\(kind)")
            XCTAssertEqual((kind == .ash ? record.ash : record.scale)?.value, bestP.v, "\(kind)")
        }
    }
}
