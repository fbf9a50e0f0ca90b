import Datasets
import Distributed
import Foundation
import NeuralNetwork
import SafeTensors
import TensorCore
import Training
import XCTest

/// The OOD-validation curve during training and the kept `best_val_epoch` (issue 16).
final class OODValidationTests: XCTestCase {
    func config(output: String) -> RunConfig {
        var c = QuadrantImages.config(name: "curve", outputDir: output, epochs: 6)
        c.train.lr = 0.05
        c.train.oodValidationEvery = 2
        c.train.oodValidationScores = [.energy, .msp]
        c.evaluate.batchSize = 7
        return c
    }

    /// Flat images (every quadrant equally bright): out of distribution for the quadrant task.
    func flatImages(count: Int) -> ImageDataset {
        var rng = SplitMix64(seed: 11)
        let images = (0..<(count * 64)).map { _ in UInt8(60 + Int(rng.next() % 120)) }
        return ImageDataset(images: images, labels: [Int](repeating: 0, count: count), channels: 1, height: 8, width: 8, classCount: 1)
    }

    /// Logits of one image computed alone (batch of 1), normalised by hand.
    func logits(_ model: Classifier, _ ds: ImageDataset, _ i: Int) -> [Float] {
        let x = (0..<64).map { (Float(ds.images[i * 64 + $0]) / 255 - 0.3) / 0.3 }
        return model.forward(Tensor(shape: [1, 1, 8, 8], values: x), context: .eval).scalars
    }

    func testCurveIsLoggedWhenDueAndTheKeptEpochIsTheBestAndItsAUROCIsRecomputedByANaiveTwin() throws {
        let out = NSTemporaryDirectory() + "curve-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let c = config(output: out)
        let ds = QuadrantImages.make(count: 96, seed: 5, noise: 64, brightness: 180)
        let flat = flatImages(count: 20)
        let data = TrainingData(trainSet: ds, trainIds: Array(0..<72), validationIds: Array(72..<96), testSet: ds,
                                normalizer: ChannelNormalizer(mean: [0.3], std: [0.3]))
        let folder = RunFolder(config: c, stage: "train")
        try folder.create()
        let comm = LocalCommunicator()
        let model = try ModelFactory.make(c.model, seed: 4)
        let trainer = try Trainer(config: c, comm: comm, model: model, data: data, folder: folder, log: { _ in })
        let monitor = try OODValidationMonitor(config: c, sets: [OODSet(name: "flat", synthetic: false, dataset: flat)],
                                               validationCount: 24, folder: folder, comm: comm, resume: false)
        trainer.epochEnded = { epoch, record in try monitor.epochEnded(epoch: epoch, trainer: trainer, record: &record) }
        try trainer.train()
        try monitor.writePlot()

        let records = RunFolder.readMetrics(folder.metricsPath)
        XCTAssertEqual(records.count, 6)
        var logged: [(epoch: Int, auroc: Double)] = []
        for r in records {
            let epoch = r["epoch"] as! Int
            let due = epoch % 2 == 0
            XCTAssertEqual(r["ood_val_auroc_energy"] != nil, due, "epoch \(epoch)")
            XCTAssertEqual(r["heldout_loss"] != nil, due, "epoch \(epoch)")
            if due {
                let a = r["ood_val_auroc_energy"] as! Double, f = r["ood_val_fpr95_msp"] as! Double
                XCTAssertTrue((0...1).contains(a) && (0...1).contains(f))
                logged.append((epoch, a))
            }
        }
        XCTAssertEqual(logged.map(\.epoch), [2, 4, 6])
        // The kept epoch is the first one with the highest logged AUROC.
        let best = logged.max { $0.auroc < $1.auroc || ($0.auroc == $1.auroc && $0.epoch > $1.epoch) }!
        XCTAssertEqual(monitor.best?.epoch, best.epoch)
        let record = try JSONDecoder().decode(BestValidationRecord.self,
                                              from: Data(contentsOf: URL(fileURLWithPath: folder.root + "/best_val_epoch.json")))
        XCTAssertEqual(record.epoch, best.epoch)
        XCTAssertEqual(record.auroc, best.auroc)
        XCTAssertEqual(record.sets, ["flat"])

        // Naive twin: the kept weights, one image at a time, energy = logsumexp, AUROC by pairs.
        let kept = try ModelLoader.load(config: c, checkpoint: folder.root + "/best_val_epoch.safetensors", comm: comm)
        func energy(_ z: [Float]) -> Double {
            let m = Double(z.max()!)
            return m + log(z.reduce(0.0) { $0 + exp(Double($1) - m) })
        }
        let idScores = (72..<96).map { energy(logits(kept, ds, $0)) }
        let oodScores = (0..<20).map { energy(logits(kept, flat, $0)) }
        var wins = 0.0
        for a in idScores { for b in oodScores { wins += a > b ? 1 : (a == b ? 0.5 : 0) } }
        XCTAssertEqual(wins / Double(idScores.count * oodScores.count), best.auroc, accuracy: 1e-9)

        let svg = try String(contentsOfFile: folder.reports + "/ood_validation.svg", encoding: .utf8)
        XCTAssertTrue(svg.contains("kept: epoch \(best.epoch)") && svg.contains("energy AUROC") && svg.contains("held-out loss"))
    }

    func testSubsetsAreEvenlySpacedInIdOrder() {
        XCTAssertEqual(OODValidationMonitor.evenlySpaced([5, 1, 3, 2, 4], at: 2), [1, 3])
        XCTAssertEqual(OODValidationMonitor.evenlySpaced([5, 1, 3, 2, 4], at: 0), [1, 2, 3, 4, 5])
        XCTAssertEqual(OODValidationMonitor.evenlySpaced([5, 1, 3], at: 9), [1, 3, 5])
        XCTAssertEqual(OODValidationMonitor.evenlySpaced(Array(0..<10), at: 4), [0, 2, 5, 7])
    }

    func testCurveNeedsAValidationSplitAndValidationSets() throws {
        let c = config(output: NSTemporaryDirectory())
        XCTAssertThrowsError(try OODValidationMonitor(config: c, sets: [OODSet(name: "flat", synthetic: false, dataset: flatImages(count: 3))],
                                                      validationCount: 0, folder: nil, comm: LocalCommunicator(), resume: false)) {
            XCTAssertTrue("\($0)".contains("train.ood_validation_every") && "\($0)".contains("data.validation_size"), "\($0)")
        }
        XCTAssertThrowsError(try OODValidationMonitor(config: c, sets: [OODSet(name: "noise", synthetic: true, dataset: flatImages(count: 3))],
                                                      validationCount: 10, folder: nil, comm: LocalCommunicator(), resume: false)) {
            XCTAssertTrue("\($0)".contains("validation OOD") && "\($0)".contains("prepare-data"), "\($0)")
        }
        XCTAssertThrowsError(try RunConfig.load(file: nil, overrides: ["train.ood_validation_every=1", "train.ood_validation_scores=[energy, energy]"])) {
            XCTAssertTrue("\($0)".contains("train.ood_validation_scores"), "\($0)")
        }
    }
}

/// Validation OOD sets must come from sources no OOD test set uses (issue 16, pitfalls F10).
final class ValidationSourceTests: XCTestCase {
    /// A manifest in launch/prepare-data.sh's format with one test set and the given extra sets.
    func manifest(_ dir: String, extra: [(name: String, role: String, sources: [String])]) throws -> String {
        func idx(_ name: String, fill: UInt8) throws -> String {
            try FileManager.default.createDirectory(atPath: dir + "/" + name, withIntermediateDirectories: true)
            var bytes: [UInt8] = [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28]
            bytes += [UInt8](repeating: fill, count: 2 * 28 * 28)
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + name + "/images-idx3-ubyte"))
            return name + "/images-idx3-ubyte"
        }
        var sets: [[String: Any]] = [["name": "letters", "role": "ood", "split": "test",
                                      "sources": [["name": "fonts-dejavu-core"], ["name": "fonts-liberation"]],
                                      "files": [["path": try idx("letters", fill: 1)]]]]
        for (i, e) in extra.enumerated() {
            sets.append(["name": e.name, "role": e.role, "split": "validation", "sources": e.sources.map { ["name": $0] },
                         "files": [["path": try idx(e.name, fill: UInt8(10 + i))]]])
        }
        let path = dir + "/manifest.json"
        try JSONSerialization.data(withJSONObject: ["sets": sets]).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testValidationSetSharingASourceWithATestSetIsRefusedNamingBothAndTheSource() throws {
        let dir = NSTemporaryDirectory() + "sources-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var e = EvaluateSection()
        // Different files, same font package: refused although no path or byte is shared.
        e.oodManifest = try manifest(dir, extra: [("val_greek", "validation_ood", ["fonts-gfs-didot"]),
                                                  ("val_serif", "validation_ood", ["fonts-liberation", "fonts-urw-base35"])])
        XCTAssertThrowsError(try OODEvaluation.checkSetPaths(e, validation: true)) { err in
            let m = "\(err)"
            XCTAssertTrue(m.contains("'val_serif'") && m.contains("fonts-liberation") && m.contains("'letters'")
                          && m.contains("evaluate.validation_ood_sets") && !m.contains("fonts-urw-base35"), m)
        }
        XCTAssertThrowsError(try OODEvaluation.loadSets(e, imageSize: 28, channels: 1, validation: true))
        // Disjoint sources: accepted, and the manifest's validation sets are the validation sets.
        e.oodManifest = try manifest(dir, extra: [("val_greek", "validation_ood", ["fonts-gfs-didot"])])
        XCTAssertNoThrow(try OODEvaluation.checkSetPaths(e, validation: true))
        XCTAssertEqual(try OODEvaluation.loadSets(e, imageSize: 28, channels: 1, validation: true).map(\.name), ["val_greek"])
        // An explicitly listed set that the manifest describes carries the manifest's sources.
        e.oodManifest = try manifest(dir, extra: [("spare", "extra", ["fonts-dejavu-core"])])
        e.validationOODSets = [OODSetConfig(name: "mine", images: dir + "/spare/images-idx3-ubyte", synthetic: false)]
        XCTAssertThrowsError(try OODEvaluation.checkSetPaths(e, validation: true)) { err in
            let m = "\(err)"
            XCTAssertTrue(m.contains("'mine'") && m.contains("fonts-dejavu-core") && m.contains("'letters'"), m)
        }
    }
}
