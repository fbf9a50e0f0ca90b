import Datasets
import Distributed
import Foundation
import NeuralNetwork
import OODDetection
import SafeTensors
import TensorCore
@testable import Training
import XCTest

/// Broken numbers are refused where they arise (each of these passed silently before).
final class NonFiniteTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "nonfinite-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func config() -> RunConfig {
        QuadrantImages.config(name: "nf", outputDir: dir, epochs: 3)
    }

    func data() -> TrainingData {
        let ds = QuadrantImages.make(count: 64, seed: 5, noise: 64, brightness: 180)
        return TrainingData(trainSet: ds, trainIds: Array(0..<64), validationIds: [], testSet: ds,
                            normalizer: ChannelNormalizer(mean: [0.3], std: [0.3]))
    }

    /// The MSP score is the log of the probability: logit gaps of 40 and 50 both round to a
    /// probability of exactly 1.0 (tying the most confident samples), but not in log space.
    func testMSPScoreIsComputedInLogSpaceAndDoesNotSaturate() {
        let logits: [Float] = [40, 0, 50, 0]
        XCTAssertEqual(LogitScore.maxSoftmax(logits: logits, numClasses: 2), [1.0, 1.0], "the probability saturates")
        let s = OODEvaluation.logitScores(.msp, logits: logits, numClasses: 2, e: EvaluateSection())
        XCTAssertLessThan(s[0], s[1], "a larger gap scores higher")
        XCTAssertLessThan(s[1], 0)
        XCTAssertEqual(s[0], -exp(-40.0), accuracy: 1e-30)
    }

    /// A learning rate of 1000 used to train for epochs with losses up to 6.5e28 and save a model
    /// with non-finite weights (ReLU turned NaN into 0). Now training stops with the non-finite
    /// error and no checkpoint holds NaN or infinity.
    func testDivergingTrainingStopsAndWritesNothingNonFinite() throws {
        var c = config()
        c.train.lr = 1000
        let folder = RunFolder(config: c, stage: "train")
        try folder.create()
        let t = try Trainer(config: c, comm: LocalCommunicator(), model: try ModelFactory.make(c.model, seed: 1), data: data(),
                            folder: folder, log: { _ in })
        XCTAssertThrowsError(try t.train(evaluateEachEpoch: false)) { error in
            let m = "\(error)"
            XCTAssertTrue(m.contains("non-finite"), m)
        }
        for ck in CheckpointStore(directory: folder.checkpoints, keep: 3).listed() {
            let f = try SafeTensorsFile.decode(try ck.read("model.safetensors"), source: ck.path)
            for r in f.records where r.dtype == .f32 {
                XCTAssertTrue(try r.floats().allSatisfy(\.isFinite), "\(ck.path): \(r.name)")
            }
        }
    }

    /// A parameter that became non-finite stops a checkpoint from being written.
    func testNoCheckpointIsWrittenWithNonFiniteParameters() throws {
        let c = config()
        let folder = RunFolder(config: c, stage: "train")
        try folder.create()
        let model = try ModelFactory.make(c.model, seed: 1)
        let t = try Trainer(config: c, comm: LocalCommunicator(), model: model, data: data(), folder: folder, log: { _ in })
        model.classifier.weight.value.withUnsafeMutableBufferPointer { $0[3] = .infinity; $0[5] = .nan }
        XCTAssertThrowsError(try t.checkpoint()) { error in
            guard case TrainingError.nonFiniteParameters(_, let tensors, _) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(tensors.contains("classifier.weight (2 of"), tensors)
        }
        XCTAssertTrue(CheckpointStore(directory: folder.checkpoints, keep: 3).listed().isEmpty)
    }

    /// Loading weights (evaluate, estimate-loss, finetune, score, resume all go through
    /// `StateDict.load`) refuses non-finite values, naming each tensor and the count.
    func testLoadingRefusesNonFiniteWeightsNamingTheTensor() throws {
        let c = config()
        let model = try ModelFactory.make(c.model, seed: 1)
        var records = StateDict.records(of: model)
        let i = try XCTUnwrap(records.firstIndex { $0.name == "classifier.bias" })
        var bias = try records[i].floats()
        bias[1] = .nan
        records[i] = SafeTensorsRecord(name: "classifier.bias", shape: records[i].shape, floats: bias)
        let file = SafeTensorsFile(records: records)
        let target = try ModelFactory.make(c.model, seed: 2)
        let before = target.classifier.bias!.value.scalars
        XCTAssertThrowsError(try StateDict.load(file, into: target, source: "w.safetensors")) { error in
            let m = "\(error)"
            XCTAssertTrue(m.contains("w.safetensors") && m.contains("classifier.bias (1 of 4)"), m)
        }
        XCTAssertEqual(target.classifier.bias!.value.scalars, before, "nothing was loaded")
    }

    /// A DataParallel checkpoint (names prefixed `module.`) points at the converter.
    func testModulePrefixPointsAtTheConverter() throws {
        let c = config()
        let records = StateDict.records(of: try ModelFactory.make(c.model, seed: 1)).map { r -> SafeTensorsRecord in
            var renamed = r
            renamed.name = "module." + r.name
            return renamed
        }
        let path = dir + "/dp.safetensors"
        try Data(try SafeTensorsFile(records: records).encode()).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ModelLoader.load(config: c, checkpoint: path, comm: LocalCommunicator())) { error in
            let m = "\(error)"
            XCTAssertTrue(m.contains("module.") && m.contains("launch/convert-torch-checkpoint.py"), m)
        }
    }

    /// `model.num_classes` smaller than the labels names the key, not the data file alone.
    func testTooFewClassesNamesTheKey() throws {
        var images: [UInt8] = [0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 28, 0, 0, 0, 28] + [UInt8](repeating: 9, count: 3 * 784)
        try Data(images).write(to: URL(fileURLWithPath: dir + "/img"))
        images = [0, 0, 8, 1, 0, 0, 0, 3, 0, 1, 7]
        try Data(images).write(to: URL(fileURLWithPath: dir + "/lab"))
        var c = RunConfig()
        c.model.numClasses = 5
        c.data.trainImages = dir + "/img"; c.data.trainLabels = dir + "/lab"
        c.data.testImages = dir + "/img"; c.data.testLabels = dir + "/lab"
        c.data.validationSize = 1
        XCTAssertThrowsError(try TrainingData.load(c, file: "cfg.yaml")) { error in
            let m = "\(error)"
            XCTAssertTrue(m.contains("key 'model.num_classes'") && m.contains("label 7") && m.contains("got 5"), m)
        }
    }

    /// After a resume from an older checkpoint, metrics.jsonl keeps each epoch once.
    func testMetricsAreTruncatedToTheResumedStep() throws {
        let folder = RunFolder(config: config(), stage: "train")
        try folder.create()
        for (epoch, steps) in [(1, 4), (2, 8), (3, 12)] { folder.appendMetrics(["epoch": epoch, "steps": steps]) }
        XCTAssertEqual(try folder.truncateMetrics(afterStep: 8), 1)
        let lines = try String(contentsOfFile: folder.metricsPath, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[1].contains("\"epoch\":2"), String(lines[1]))
        XCTAssertEqual(try folder.truncateMetrics(afterStep: 8), 0)
    }
}
