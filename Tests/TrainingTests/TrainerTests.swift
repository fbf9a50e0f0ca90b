import Datasets
import Distributed
import NeuralNetwork
import SafeTensors
import TensorCore
import Training
import XCTest

/// Rank-local trainer tests (one process, LocalCommunicator). N-rank equivalence lives in
/// `umtrain selftest` under mpirun.
final class TrainerTests: XCTestCase {
    /// 1x8x8 images whose class is which quadrant is bright.
    func data(count: Int = 96) -> TrainingData {
        let ds = QuadrantImages.make(count: count, seed: 5, noise: 64, brightness: 180)
        return TrainingData(trainSet: ds, trainIds: Array(0..<count), validationIds: [], testSet: ds,
                            normalizer: ChannelNormalizer(mean: [0.3], std: [0.3]))
    }

    func config() -> RunConfig {
        var c = QuadrantImages.config(epochs: 8)
        c.train.lr = 0.1
        return c
    }

    func testTrainingLearnsAndEvaluationIsIdOrdered() throws {
        let c = config()
        let d = data()
        let model = try ModelFactory.make(c.model, seed: 1)
        let t = try Trainer(config: c, comm: LocalCommunicator(), model: model, data: d, folder: nil, log: { _ in })
        let before = try t.evaluate(d.testSet, ids: d.testSet.ids)
        try t.train(evaluateEachEpoch: false)
        let after = try t.evaluate(d.testSet, ids: d.testSet.ids)
        XCTAssertEqual(t.globalStep, 8 * 6)
        XCTAssertLessThan(after.loss, before.loss * 0.5, "training must reduce the loss")
        XCTAssertGreaterThan(after.accuracy, 0.9)
        XCTAssertEqual(after.ids, (0..<96).map(Int64.init))
        XCTAssertEqual(after.count, 96)
        // The mean is the id-ordered Double sum of the per-sample losses.
        XCTAssertEqual(after.loss, after.losses.reduce(0, +) / 96, accuracy: 1e-12)
    }

    func testEvaluationDoesNotDependOnTheEvaluationBatchSize() throws {
        var c = config()
        let d = data()
        c.train.evalBatchSize = 7
        let a = try Trainer(config: c, comm: LocalCommunicator(), model: try ModelFactory.make(c.model, seed: 2), data: d,
                            folder: nil, log: { _ in }).evaluate(d.testSet, ids: d.testSet.ids)
        c.train.evalBatchSize = 96
        let b = try Trainer(config: c, comm: LocalCommunicator(), model: try ModelFactory.make(c.model, seed: 2), data: d,
                            folder: nil, log: { _ in }).evaluate(d.testSet, ids: d.testSet.ids)
        XCTAssertEqual(a.predictions, b.predictions)
        for (x, y) in zip(a.losses, b.losses) { XCTAssertEqual(x, y, accuracy: 1e-5) }
    }

    func testLossTransformScalesTheGradient() throws {
        struct Ascent: LossTransform {
            func gradientMultiplier(globalMeanLoss: Double) -> Double { -1 }
            var objectiveDescription: String { "ascent" }
        }
        var c = config()
        c.train.epochs = 3
        c.train.momentum = 0
        c.train.weightDecay = 0
        let d = data()
        let t = try Trainer(config: c, comm: LocalCommunicator(), model: try ModelFactory.make(c.model, seed: 3), data: d,
                            folder: nil, log: { _ in })
        t.lossTransform = Ascent()
        let before = try t.evaluate(d.testSet, ids: d.testSet.ids)
        try t.train(evaluateEachEpoch: false)
        let after = try t.evaluate(d.testSet, ids: d.testSet.ids)
        XCTAssertGreaterThan(after.loss, before.loss, "a multiplier of -1 is gradient ascent")
    }

    func testStateDictRoundTripAndStrictArchitectureMismatch() throws {
        let c = config()
        let model = try ModelFactory.make(c.model, seed: 9)
        let file = SafeTensorsFile(records: StateDict.records(of: model), metadata: ModelFactory.metadata(c.model))
        let bytes = try file.encode()
        let fresh = try ModelFactory.make(c.model, seed: 10)
        try StateDict.load(try SafeTensorsFile.decode(bytes, source: "mem"), into: fresh, strict: true, source: "mem")
        XCTAssertEqual(StateDict.records(of: fresh), StateDict.records(of: model))
        XCTAssertEqual(ModelFactory.modelSection(fromMetadata: file.metadata), c.model)
        var other = c.model
        other.width = 6
        let wrong = try ModelFactory.make(other, seed: 1)
        XCTAssertThrowsError(try StateDict.load(try SafeTensorsFile.decode(bytes, source: "ckpt.safetensors"), into: wrong,
                                                strict: true, source: "ckpt.safetensors")) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("features.0.weight"), m)
            XCTAssertTrue(m.contains("ckpt.safetensors"), m)
        }
    }

    func testMissingDataFileNamesTheKey() throws {
        var c = RunConfig()
        c.data.trainImages = "/nonexistent/train.gz"
        XCTAssertThrowsError(try TrainingData.load(c, file: "cfg.yaml")) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("data.train_images"), m)
            XCTAssertTrue(m.contains("/nonexistent/train.gz"), m)
            XCTAssertTrue(m.contains("prepare-data.sh"), m)
        }
    }

    func testArgmaxTakesTheFirstMaximum() {
        let z = Tensor(shape: [2, 3], values: [1, 3, 3, -1, -2, -1])
        XCTAssertEqual(argmaxRows(z), [1, 0])
    }
}
