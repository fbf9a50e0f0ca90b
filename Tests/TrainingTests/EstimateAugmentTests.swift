import Foundation
import Datasets
import Distributed
import NeuralNetwork
import TensorCore
import Training
import XCTest

/// `estimate.augment`: the estimate stage reads the training view of epoch `train.epochs`
/// (augmentation keyed by (seed, epoch, id)) for every pass.
final class EstimateAugmentTests: XCTestCase {
    func data(augmentation: Augmentation?) -> TrainingData {
        let ds = QuadrantImages.make(count: 120, seed: 8, noise: 90, brightness: 150)
        return TrainingData(trainSet: ds, trainIds: Array(0..<96), validationIds: Array(96..<120), testSet: ds,
                            normalizer: ChannelNormalizer(mean: [0.4], std: [0.3]), augmentation: augmentation)
    }

    func config() -> RunConfig {
        // Batch size and schedule are the shared config's (neither is read by the estimate).
        var c = QuadrantImages.config(epochs: 7, mean: 0.4)
        c.train.evalBatchSize = 10
        c.estimate.keepRatios = [0.9]
        c.estimate.keepRatio = 0.9
        c.estimate.masks = 3
        return c
    }

    func testAugmentedEvaluationIsTheTrainingViewOfTheEpoch() throws {
        let aug = Augmentation(cropPadding: 2, horizontalFlip: true, seed: 5)
        let d = data(augmentation: aug)
        let model = try ModelFactory.make(config().model, seed: 3)
        let ids = Array(0..<23)
        let r = try Evaluator.evaluate(model: model, comm: LocalCommunicator(), data: d, dataset: d.trainSet, ids: ids,
                                       batchSize: 6, augmentedEpoch: 4)
        // Twin: assemble the augmented batch directly and run the model on it.
        let loaded = try BatchLoader.assemble(BatchPlan(epoch: 4, step: 0, positions: ids),
                                              source: InMemorySource(d.trainSet.dataset!, augmentation: aug), normalizer: d.normalizer)
        let logits = model.forward(Tensor(shape: [23, 1, 8, 8], values: loaded.images), context: .eval)
        let ce = softmaxCrossEntropy(logits: logits, labels: loaded.labels)
        for (a, b) in zip(r.losses, ce.perSampleLoss) { XCTAssertEqual(a, Double(b), accuracy: 1e-5) }
        let plain = try Evaluator.evaluate(model: model, comm: LocalCommunicator(), data: d, dataset: d.trainSet, ids: ids, batchSize: 6)
        XCTAssertNotEqual(plain.losses, r.losses, "the augmented view must differ from the plain images")
        let other = try Evaluator.evaluate(model: model, comm: LocalCommunicator(), data: d, dataset: d.trainSet, ids: ids,
                                           batchSize: 6, augmentedEpoch: 5)
        XCTAssertNotEqual(other.losses, r.losses, "another epoch draws other crops")
    }

    func testEstimateWithAugmentationRunsAndDiffersFromThePlainEstimate() throws {
        var c = config()
        let aug = Augmentation(cropPadding: 2, horizontalFlip: true, seed: 5)
        let model = try ModelFactory.make(c.model, seed: 3)
        let plain = try LossEstimation.run(config: c, comm: LocalCommunicator(), model: model, data: data(augmentation: aug), log: { _ in }).0
        c.estimate.augment = true
        let a1 = try LossEstimation.run(config: c, comm: LocalCommunicator(), model: model, data: data(augmentation: aug), log: { _ in }).0
        let a2 = try LossEstimation.run(config: c, comm: LocalCommunicator(), model: model, data: data(augmentation: aug), log: { _ in }).0
        XCTAssertEqual(a1.xi.bitPattern, a2.xi.bitPattern, "deterministic")
        XCTAssertEqual(a1.atypicalCount, a2.atypicalCount)
        XCTAssertNotEqual(a1.xi, plain.xi)
        XCTAssertNotEqual(a1.trainLoss, plain.trainLoss)
        // Without any training augmentation configured, augment: true is refused, naming the key.
        XCTAssertThrowsError(try LossEstimation.run(config: c, comm: LocalCommunicator(), model: model, data: data(augmentation: nil),
                                                   log: { _ in })) { XCTAssertTrue("\($0)".contains("estimate.augment"), "\($0)") }
    }

    /// `estimate.xi_rule: position`: xi = train + p * (held-out - train), the mask estimate and the
    /// atypical mask unchanged; the mask rule reports where its xi sits.
    func testPositionRulePlacesXiBetweenTheTrainingAndHeldOutLoss() throws {
        var c = config()
        let model = try ModelFactory.make(c.model, seed: 3)
        let (mask, maskTable) = try LossEstimation.run(config: c, comm: LocalCommunicator(), model: model, data: data(augmentation: nil), log: { _ in })
        XCTAssertEqual(mask.xiRule, "mask")
        XCTAssertEqual(mask.xi.bitPattern, mask.maskXi.bitPattern)
        XCTAssertEqual(mask.maskXiPosition, (mask.xi - mask.trainLoss) / (mask.heldoutLoss - mask.trainLoss), accuracy: 1e-15)
        c.estimate.xiRule = .position
        c.estimate.xiPosition = 0.25
        let (pos, posTable) = try LossEstimation.run(config: c, comm: LocalCommunicator(), model: model, data: data(augmentation: nil), log: { _ in })
        XCTAssertEqual(pos.xiRule, "position")
        XCTAssertEqual(pos.xi, pos.trainLoss + 0.25 * (pos.heldoutLoss - pos.trainLoss), accuracy: 1e-15)
        XCTAssertEqual(pos.maskXi.bitPattern, mask.xi.bitPattern, "the mask estimate is still reported")
        XCTAssertEqual(posTable.atypical, maskTable.atypical, "the atypical mask comes from the masks either way")
        XCTAssertTrue(pos.calibrated, "a position in (0, 1) is calibrated by construction when held-out > train: \(pos.calibrationNote)")
        // estimate.json round trip keeps the new fields; an old file without them reads as the mask rule.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("est-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try pos.write(to: dir.path + "/estimate.json")
        let back = try EstimateReport.read(dir.path + "/estimate.json")
        XCTAssertEqual(back.xiRule, "position")
        XCTAssertEqual(back.maskXi, pos.maskXi)
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("estimate.json")))
            as? [String: Any])
        for key in ["xi_rule", "mask_xi", "mask_xi_position"] { XCTAssertNotNil(json.removeValue(forKey: key), key) }
        try JSONSerialization.data(withJSONObject: json).write(to: dir.appendingPathComponent("old.json"))
        let old = try EstimateReport.read(dir.path + "/old.json")
        XCTAssertEqual(old.xiRule, "mask")
        XCTAssertEqual(old.maskXi, old.xi)
    }
}
