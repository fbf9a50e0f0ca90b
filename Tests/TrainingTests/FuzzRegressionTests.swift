import Datasets
import Distributed
import Foundation
import TensorCore
@testable import Training
import XCTest

/// Checkpoint metadata that the fuzz target `checkpoint` (Fuzz/, docs/fuzzing.md) feeds to the
/// readers: a `state.json` must name a position the trainer can continue from, or resuming
/// must fail with an error naming the file.
final class FuzzRegressionTests: XCTestCase {
    private var directory: String!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "TrainingFuzzRegression-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func config() -> RunConfig {
        QuadrantImages.config(name: "fuzz-regression", outputDir: directory, epochs: 1)
    }

    private func data() -> TrainingData {
        let ds = QuadrantImages.make(count: 32, seed: 5, noise: 64, brightness: 180)
        return TrainingData(trainSet: ds, trainIds: Array(0..<32), validationIds: [], testSet: ds,
                            normalizer: ChannelNormalizer(mean: [0.3], std: [0.3]))
    }

    /// Rewrites one key of the newest checkpoint's state.json and its COMPLETE marker's size and
    /// checksum, as a hand edit (or a damaged file with a matching marker) would leave them.
    private func tamperState(_ folder: RunFolder, key: String, value: Any) throws {
        let checkpoint = try XCTUnwrap(CheckpointStore(directory: folder.checkpoints, keep: 3).listed().last)
        let statePath = checkpoint.path + "/state.json"
        var state = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: statePath))) as? [String: Any])
        state[key] = value
        let bytes = [UInt8](try JSONSerialization.data(withJSONObject: state))
        try Data(bytes).write(to: URL(fileURLWithPath: statePath))
        let markerPath = checkpoint.path + "/COMPLETE"
        var marker = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: markerPath))) as? [String: Any])
        var files = try XCTUnwrap(marker["files"] as? [String: Any])
        let sum = bytes.withUnsafeBytes { String(FNV1a64.digest(bytes: $0), radix: 16) }
        files["state.json"] = ["bytes": bytes.count, "fnv1a64": sum]
        marker["files"] = files
        try JSONSerialization.data(withJSONObject: marker).write(to: URL(fileURLWithPath: markerPath))
    }

    /// A checkpoint whose state.json says step_in_epoch -1 (or a global step near Int.max) was
    /// resumed without complaint; training then indexed the epoch's batches at -1 (a trap), or
    /// overflowed counting steps. Now resuming names the file and the field.
    func testResumeRejectsAPositionOutOfRange() throws {
        let c = config()
        let folder = RunFolder(config: c, stage: "train")
        try folder.create()
        let d = data()
        let first = try Trainer(config: c, comm: LocalCommunicator(), model: try ModelFactory.make(c.model, seed: 1),
                                data: d, folder: folder, log: { _ in })
        try first.train(evaluateEachEpoch: false)

        for (key, value) in [("step_in_epoch", -1 as Any), ("epoch", -3), ("global_step", Int.max), ("world_size", 0)] {
            try tamperState(folder, key: key, value: value)
            let again = try Trainer(config: c, comm: LocalCommunicator(), model: try ModelFactory.make(c.model, seed: 1),
                                    data: d, folder: folder, log: { _ in })
            XCTAssertThrowsError(try again.resumeIfPossible(), "\(key) = \(value) was accepted") { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("state.json") && text.contains("\(key) \(value)"), text)
            }
            try tamperState(folder, key: key, value: key == "world_size" ? 1 : 0)
        }
        // The repaired file resumes.
        let resumed = try Trainer(config: c, comm: LocalCommunicator(), model: try ModelFactory.make(c.model, seed: 1),
                                  data: d, folder: folder, log: { _ in })
        XCTAssertNotNil(try resumed.resumeIfPossible())
    }
}
