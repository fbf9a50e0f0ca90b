import Datasets
import Distributed
import Foundation
import NeuralNetwork
import SafeTensors
import TensorCore
import Training
import XCTest

/// Folder datasets read lazily (decoded per batch on a loader thread) must give exactly what the
/// in-memory read gives: the same ids, labels and bytes, the same augmented training batches,
/// and therefore bitwise the same trained weights and evaluation results.
final class LazyLoadingTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("lazyfolder-\(UUID().uuidString)").path
        var rng = SplitMix64(seed: 11)
        // 3 classes x 9 RGB PNGs of different non-square sizes; class = which third is bright.
        for (label, name) in ["ant", "bee", "cat"].enumerated() {
            for split in ["train", "val"] {
                let dir = "\(root)/\(split)/\(name)"
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                for i in 0..<(split == "train" ? 9 : 4) {
                    let h = 10 + i % 3, w = 12 + (i * 5) % 7
                    var pixels = [UInt8](repeating: 0, count: 3 * h * w)
                    for c in 0..<3 {
                        for y in 0..<h {
                            for x in 0..<w {
                                let bright = x * 3 / w == label
                                pixels[(c * h + y) * w + x] = UInt8(truncatingIfNeeded: Int(rng.next() % 60) + (bright ? 170 : 20))
                            }
                        }
                    }
                    let image = DecodedImage(pixels: pixels, channels: 3, height: h, width: w)
                    try Data(try ImageEncoder.png(image)).write(to: URL(fileURLWithPath: "\(dir)/img\(i).png"))
                }
            }
        }
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    func config(loading: SampleSet.Loading) -> RunConfig {
        var c = RunConfig()
        c.model.arch = .cnn5
        c.model.width = 4
        c.model.inChannels = 3
        c.model.imageSize = 8
        c.model.numClasses = 3
        c.data.format = .folder
        c.data.trainImages = root + "/train"
        c.data.testImages = root + "/val"
        c.data.loading = loading
        c.data.resize = 9
        c.data.validationSize = 5
        c.data.mean = [0.5, 0.5, 0.5]
        c.data.std = [0.25, 0.25, 0.25]
        c.data.randomCrop = true
        c.data.padding = 2
        c.data.horizontalFlip = true
        c.train.epochs = 3
        c.train.batchSize = 6
        c.train.evalBatchSize = 4
        c.train.lr = 0.05
        c.train.schedule = .constant
        return c
    }

    func testLazyFolderGivesTheSameSamplesAsTheInMemoryRead() throws {
        let memory = try TrainingData.load(config(loading: .memory), file: "test")
        let lazy = try TrainingData.load(config(loading: .lazy), file: "test")
        XCTAssertFalse(memory.trainSet.isLazy)
        XCTAssertTrue(lazy.trainSet.isLazy && lazy.testSet.isLazy)
        XCTAssertEqual(lazy.trainSet.ids, memory.trainSet.ids)
        XCTAssertEqual(lazy.trainSet.labels, memory.trainSet.labels)
        XCTAssertEqual(lazy.trainSet.labels, [Int](repeating: 0, count: 9) + [Int](repeating: 1, count: 9) + [Int](repeating: 2, count: 9))
        XCTAssertEqual(lazy.trainIds, memory.trainIds)
        XCTAssertEqual(lazy.validationIds, memory.validationIds)
        XCTAssertEqual(lazy.trainSet.classNames, ["ant", "bee", "cat"])
        // Evaluation batches: bitwise equal, in any batch order.
        let positions = [26, 0, 13, 5, 9]
        let a = try memory.batch(memory.trainSet, positions: positions)
        let b = try lazy.batch(lazy.trainSet, positions: positions)
        XCTAssertEqual(a.images.shape, [5, 3, 8, 8])
        XCTAssertEqual(a.images.scalars.map(\.bitPattern), b.images.scalars.map(\.bitPattern))
        XCTAssertEqual(a.labels, b.labels)
        // The prefetching iteration gives the same batches in order.
        var seen: [[Float]] = []
        try lazy.forEachBatch(lazy.testSet, [[0, 1, 2], [11], [5, 3]]) { k, x, _ in
            XCTAssertEqual(k, seen.count)
            seen.append(x.scalars)
        }
        XCTAssertEqual(seen.count, 3)
        XCTAssertEqual(seen[2], try memory.batch(memory.testSet, positions: [5, 3]).images.scalars)
        // Augmented training reads (crop with padding + flip keyed by (seed, epoch, id)) agree.
        let ms = memory.trainSet.trainingSource(augmentation: memory.augmentation)
        let ls = lazy.trainSet.trainingSource(augmentation: lazy.augmentation)
        var flips = 0
        for epoch in 0..<4 {
            for p in 0..<27 {
                var x = [UInt8](repeating: 0, count: 3 * 64), y = x
                try x.withUnsafeMutableBufferPointer { try ms.sample(at: p, epoch: epoch, into: $0) }
                try y.withUnsafeMutableBufferPointer { try ls.sample(at: p, epoch: epoch, into: $0) }
                XCTAssertEqual(x, y, "epoch \(epoch) position \(p)")
                var plain = [UInt8](repeating: 0, count: 3 * 64)
                try plain.withUnsafeMutableBufferPointer { try lazy.trainSet.evaluationSource().sample(at: p, epoch: epoch, into: $0) }
                if plain != y { flips += 1 }
            }
        }
        XCTAssertGreaterThan(flips, 50, "the augmentation must actually change most samples")
    }

    func testTrainingAndEvaluationAreBitwiseEqualLazyOrInMemory() throws {
        var results: [(weights: [UInt8], losses: [Double], predictions: [Int64])] = []
        for loading: SampleSet.Loading in [.memory, .lazy] {
            let c = config(loading: loading)
            let d = try TrainingData.load(c, file: "test")
            let model = try ModelFactory.make(c.model, seed: 4)
            let t = try Trainer(config: c, comm: LocalCommunicator(), model: model, data: d, folder: nil, log: { _ in })
            try t.train(evaluateEachEpoch: false)
            let ev = try t.evaluate(d.testSet, ids: d.testSet.ids)
            XCTAssertEqual(ev.count, 12)
            let bytes = try SafeTensorsFile(records: StateDict.records(of: model), metadata: [:]).encode()
            results.append((bytes, ev.losses, ev.predictions))
        }
        XCTAssertEqual(results[0].weights, results[1].weights, "trained weights must not depend on data.loading")
        XCTAssertEqual(results[0].losses.map(\.bitPattern), results[1].losses.map(\.bitPattern))
        XCTAssertEqual(results[0].predictions, results[1].predictions)
    }

    func testFolderIndexSerializationRoundTripsForRankZeroBroadcast() throws {
        for (dir, layout) in [(root + "/train", FolderLayout.classFolders), (root + "/val", .flat)] {
            let index = try ImageFolderIndex.scan(root: dir, layout: layout)
            XCTAssertEqual(try ImageFolderIndex(serialized: index.serialized()), index)
            let sub = index.subset(positions: [3, 1])
            XCTAssertEqual(sub.ids, [3, 1])
            XCTAssertEqual(try ImageFolderIndex(serialized: sub.serialized()), sub)
        }
        XCTAssertThrowsError(try ImageFolderIndex(serialized: Array("garbage".utf8)))
    }

    func testAutoLoadingPicksMemoryForSmallSetsAndTheLimitIsPerSet() {
        XCTAssertFalse(SampleSet.loadsLazily(.auto, files: 1000, sampleBytes: 3 * 224 * 224))
        // ImageNet-1k train: 1,281,167 x 150,528 bytes = 193 GB.
        XCTAssertTrue(SampleSet.loadsLazily(.auto, files: 1_281_167, sampleBytes: 3 * 224 * 224))
        XCTAssertTrue(SampleSet.loadsLazily(.lazy, files: 1, sampleBytes: 1))
        XCTAssertFalse(SampleSet.loadsLazily(.memory, files: 1_281_167, sampleBytes: 3 * 224 * 224))
    }

    func testRandomResizedCropNeedsLazyLoadingAndNamesTheKey() throws {
        var c = config(loading: .memory)
        c.data.randomCrop = false
        c.data.randomResizedCrop = true
        XCTAssertThrowsError(try TrainingData.load(c, file: "cfg.yaml")) { error in
            let m = "\(error)"
            XCTAssertTrue(m.contains("data.random_resized_crop") && m.contains("data.loading: lazy"), m)
        }
        c.data.loading = .lazy
        let d = try TrainingData.load(c, file: "cfg.yaml")
        XCTAssertNil(d.augmentation, "the flip belongs to the random-resized-crop transform")
        let source = d.trainSet.trainingSource(augmentation: d.augmentation)
        var a = [UInt8](repeating: 0, count: 3 * 64), b = a, plain = a
        try a.withUnsafeMutableBufferPointer { try source.sample(at: 3, epoch: 0, into: $0) }
        try b.withUnsafeMutableBufferPointer { try source.sample(at: 3, epoch: 0, into: $0) }
        try plain.withUnsafeMutableBufferPointer { try d.trainSet.evaluationSource().sample(at: 3, epoch: 0, into: $0) }
        XCTAssertEqual(a, b, "the crop is a pure function of (seed, epoch, id)")
        var differs = false
        for epoch in 1..<6 {
            var e = [UInt8](repeating: 0, count: 3 * 64)
            try e.withUnsafeMutableBufferPointer { try source.sample(at: 3, epoch: epoch, into: $0) }
            differs = differs || e != a
        }
        XCTAssertTrue(differs, "a new crop every epoch")
        XCTAssertNotEqual(a, plain)
    }

    func testTrainSubsetOfAFolderIsASeededSampleAcrossClasses() throws {
        var c = config(loading: .lazy)
        c.data.trainSubset = 9
        let d = try TrainingData.load(c, file: "cfg.yaml")
        XCTAssertEqual(d.trainIds.count, 9)
        XCTAssertEqual(d.trainIds, d.trainIds.sorted())
        XCTAssertTrue(Set(d.trainIds).isDisjoint(with: d.validationIds))
        XCTAssertEqual(Set(d.trainIds.map { d.trainSet.labels[$0] }).count, 3, "all classes, not the first ones: \(d.trainIds)")
        XCTAssertEqual(try TrainingData.load(c, file: "cfg.yaml").trainIds, d.trainIds, "seeded")
    }

    func testTestRootWithOtherClassFoldersIsRefused() throws {
        try FileManager.default.moveItem(atPath: root + "/val/cat", toPath: root + "/val-cat")
        XCTAssertThrowsError(try TrainingData.load(config(loading: .lazy), file: "cfg.yaml")) { error in
            let m = "\(error)"
            XCTAssertTrue(m.contains("data.test_images") && m.contains("missing cat"), m)
        }
        try FileManager.default.moveItem(atPath: root + "/val-cat", toPath: root + "/val/cat")
        try FileManager.default.createDirectory(atPath: root + "/val/zebra", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: root + "/val/cat/img0.png", toPath: root + "/val/zebra/z.png")
        XCTAssertThrowsError(try TrainingData.load(config(loading: .memory), file: "cfg.yaml")) { error in
            let m = "\(error)"
            XCTAssertTrue(m.contains("data.test_images") && m.contains("extra zebra"), m)
        }
    }

    func testConfigChecksTheNewDataKeys() {
        XCTAssertThrowsError(try RunConfig.load(file: nil, overrides: ["data.loading=sometimes"])) {
            XCTAssertTrue("\($0)".contains("data.loading") && "\($0)".contains("auto, memory or lazy"), "\($0)")
        }
        var c = config(loading: .auto)
        c.data.resize = 5
        XCTAssertThrowsError(try c.validate(file: "cfg.yaml")) { XCTAssertTrue("\($0)".contains("data.resize"), "\($0)") }
        c = config(loading: .auto)
        c.data.format = .idx
        c.data.randomCrop = false
        c.data.randomResizedCrop = true
        XCTAssertThrowsError(try c.validate(file: "cfg.yaml")) { XCTAssertTrue("\($0)".contains("data.random_resized_crop"), "\($0)") }
    }

    func testLazyFileThatFailsToDecodeStopsTheReadNamingTheFile() throws {
        // A PNG signature followed by garbage passes the up-front signature check and fails when read.
        let bad = root + "/val/bee/img1.png"
        try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3]).write(to: URL(fileURLWithPath: bad))
        let d = try TrainingData.load(config(loading: .lazy), file: "test")
        let model = try ModelFactory.make(config(loading: .lazy).model, seed: 1)
        XCTAssertThrowsError(try Evaluator.evaluate(model: model, comm: LocalCommunicator(), data: d, dataset: d.testSet,
                                                    ids: d.testSet.ids, batchSize: 3)) { error in
            XCTAssertTrue("\(error)".contains("img1.png"), "\(error)")
        }
        // A file that is not an image at all is refused up front (training/test sets are not skipped).
        try Data("<html>".utf8).write(to: URL(fileURLWithPath: bad))
        XCTAssertThrowsError(try TrainingData.load(config(loading: .lazy), file: "test")) { error in
            XCTAssertTrue("\(error)".contains("img1.png"), "\(error)")
        }
    }

    func testEveryBadFileOfALazyFolderIsReportedInOneRun() throws {
        try Data("<html>".utf8).write(to: URL(fileURLWithPath: root + "/train/ant/zz1.png"))
        try Data().write(to: URL(fileURLWithPath: root + "/train/cat/zz2.png"))
        XCTAssertThrowsError(try TrainingData.load(config(loading: .lazy), file: "test")) { error in
            let m = "\(error)"
            XCTAssertTrue(m.contains("2 unreadable image files") && m.contains("zz1.png") && m.contains("zz2.png"), m)
        }
    }

    func testLazyOODFolderSetScoresLikeTheInMemoryOne() throws {
        let c = config(loading: .memory)
        let d = try TrainingData.load(c, file: "test")
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: root + "/val/cat/broken.png"))
        // Passes the signature check, fails to decode: lazy OOD sets decode up front, so it is
        // skipped there too instead of stopping the evaluation.
        try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 9, 9, 9]).write(to: URL(fileURLWithPath: root + "/val/cat/truncated.png"))
        var e = EvaluateSection()
        e.oodManifest = ""
        e.oodSets = [OODSetConfig(name: "val-as-ood", images: root + "/val", synthetic: false)]
        e.scores = [.msp, .energy, .mahalanobis]
        e.batchSize = 5
        let memory = try OODEvaluation.loadSets(e, imageSize: 8, channels: 3, resize: 9, loading: .memory)
        let lazy = try OODEvaluation.loadSets(e, imageSize: 8, channels: 3, resize: 9, loading: .lazy)
        XCTAssertFalse(memory[0].dataset.isLazy)
        XCTAssertTrue(lazy[0].dataset.isLazy)
        XCTAssertEqual(memory[0].dataset.count, 12, "the broken files are skipped")
        XCTAssertEqual(lazy[0].dataset.count, 12, "the broken files are skipped")
        XCTAssertEqual(lazy[0].dataset.ids, memory[0].dataset.ids)
        let model = try ModelFactory.make(c.model, seed: 6)
        var rc = c
        rc.evaluate = e
        let a = try OODEvaluation.run(model: model, comm: LocalCommunicator(), config: rc, data: d, sets: memory, log: { _ in })
        let b = try OODEvaluation.run(model: model, comm: LocalCommunicator(), config: rc, data: d, sets: lazy, log: { _ in })
        for k in e.scores {
            XCTAssertEqual(a.oodScores["val-as-ood"]!.scores[k]!.map(\.bitPattern), b.oodScores["val-as-ood"]!.scores[k]!.map(\.bitPattern), k.rawValue)
        }
        XCTAssertEqual(a.rows.count, b.rows.count)
        for (x, y) in zip(a.rows, b.rows) { XCTAssertEqual(x.metrics, y.metrics) }
    }
}
