import Training
import XCTest

final class ConfigTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func write(_ text: String, _ name: String = "c.yaml") throws -> String {
        let p = dir.appendingPathComponent(name).path
        try text.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    func testDefaultsAndPartialFileMerge() throws {
        let p = try write("name: quick\ntrain:\n  epochs: 3\n  lr: 0.05\n")
        let (c, notes) = try RunConfig.load(file: p)
        XCTAssertEqual(c.name, "quick")
        XCTAssertEqual(c.train.epochs, 3)
        XCTAssertEqual(c.train.lr, 0.05)
        XCTAssertEqual(c.train.batchSize, RunConfig().train.batchSize, "unset keys keep their defaults")
        XCTAssertEqual(c.model.arch, .cnn5)
        XCTAssertTrue(notes.isEmpty)
    }

    func testUnknownKeyNamesItAndSuggestsTheClosest() throws {
        let p = try write("train:\n  learning_rat: 0.1\n  epochz: 3\n")
        XCTAssertThrowsError(try RunConfig.load(file: p)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("unknown key 'train.learning_rat'") || m.contains("unknown key 'train.epochz'"), m)
            XCTAssertTrue(m.contains(p), m)
        }
        let q = try write("trian:\n  epochs: 3\n", "q.yaml")
        XCTAssertThrowsError(try RunConfig.load(file: q)) { e in
            XCTAssertTrue("\(e)".contains("Did you mean 'train'?"), "\(e)")
        }
        let r = try write("train:\n  epochz: 3\n", "r.yaml")
        XCTAssertThrowsError(try RunConfig.load(file: r)) { e in
            XCTAssertTrue("\(e)".contains("Did you mean 'train.epochs'?"), "\(e)")
        }
    }

    func testWrongTypeNamesKeyExpectedAndActual() throws {
        let p = try write("train:\n  epochs: ten\n")
        XCTAssertThrowsError(try RunConfig.load(file: p)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("'train.epochs' expects an integer, got 'ten'"), m)
        }
        let q = try write("train: 5\n", "q.yaml")
        XCTAssertThrowsError(try RunConfig.load(file: q)) { e in
            XCTAssertTrue("\(e)".contains("key 'train' expects a mapping"), "\(e)")
        }
    }

    func testInvalidValueNamesKeyAndHint() throws {
        let p = try write("train:\n  momentum: 1.5\n")
        XCTAssertThrowsError(try RunConfig.load(file: p)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("'train.momentum' must be a number in [0, 1), got 1.5"), m)
            XCTAssertTrue(m.contains("Hint:"), m)
        }
        let q = try write("model:\n  arch: resnet21\n", "q.yaml")
        XCTAssertThrowsError(try RunConfig.load(file: q)) { e in XCTAssertTrue("\(e)".contains("model.arch"), "\(e)") }
    }

    func testSyntaxErrorGivesLineAndMissingFileIsClear() throws {
        let p = try write("train:\n  epochs: [1, 2\n")
        XCTAssertThrowsError(try RunConfig.load(file: p)) { e in
            XCTAssertTrue("\(e)".contains("YAML syntax error"), "\(e)")
        }
        XCTAssertThrowsError(try RunConfig.load(file: dir.appendingPathComponent("none.yaml").path)) { e in
            XCTAssertTrue("\(e)".contains("no such file"), "\(e)")
        }
    }

    func testOverridesApplyAfterTheFile() throws {
        let p = try write("train:\n  epochs: 3\n")
        let (c, _) = try RunConfig.load(file: p, overrides: ["train.epochs=7", "model.arch=lenet", "data.mean=[0.5]"])
        XCTAssertEqual(c.train.epochs, 7)
        XCTAssertEqual(c.model.arch, .lenet)
        XCTAssertEqual(c.data.mean, [0.5])
        XCTAssertThrowsError(try RunConfig.load(file: p, overrides: ["train.epoch=7"])) { e in
            XCTAssertTrue("\(e)".contains("Did you mean 'train.epochs'?"), "\(e)")
        }
        XCTAssertThrowsError(try RunConfig.load(file: p, overrides: ["train.epochs"])) { e in
            XCTAssertTrue("\(e)".contains("no '='"), "\(e)")
        }
    }

    func testReferenceAliasesAreMappedAndNoted() throws {
        let p = try write("arch: lenet\nepochs: 4\nbatch_size: 64\ndroprate: 0.3\n")
        let (c, notes) = try RunConfig.load(file: p)
        XCTAssertEqual(c.model.arch, .lenet)
        XCTAssertEqual(c.train.epochs, 4)
        XCTAssertEqual(c.train.batchSize, 64)
        XCTAssertEqual(c.model.dropout, 0.3)
        XCTAssertTrue(notes.contains("config key 'batch_size' read as 'train.batch_size'"), "\(notes)")
        let q = try write("epochs: 4\ntrain:\n  epochs: 5\n", "q.yaml")
        XCTAssertThrowsError(try RunConfig.load(file: q)) { e in XCTAssertTrue("\(e)".contains("keep one"), "\(e)") }
    }

    func testResolvedYAMLRoundTrips() throws {
        var c = RunConfig()
        c.name = "x"
        c.train.milestones = [5, 8]
        let p = try write(try c.yaml())
        XCTAssertEqual(try RunConfig.load(file: p).config, c)
    }

    func testLinearLearningRateScaling() {
        var c = RunConfig()
        c.train.lr = 0.1
        c.train.batchSize = 512
        c.train.referenceBatchSize = 256
        XCTAssertEqual(c.effectiveLearningRate, 0.1)
        c.train.lrScaling = .linear
        XCTAssertEqual(c.effectiveLearningRate, 0.2, accuracy: 1e-15)
    }
}

final class ReferenceKeyTests: XCTestCase {
    func testReferenceValueTranslations() throws {
        let p = FileManager.default.temporaryDirectory.appendingPathComponent("ref-\(UUID().uuidString).yaml").path
        try """
        arch: densenet_bc100
        set: CIFAR10
        bn_type: NonAffineBatchNorm
        UM: false
        prune_rate: 0.8
        freeze_weights: true
        msp: true
        odin: false
        energy: true
        ood_set: [Textures, SVHN]
        model:
          in_channels: 3
          image_size: 32
        data:
          mean: [0.4914, 0.4822, 0.4465]
          std: [0.2470, 0.2435, 0.2616]
        """.write(toFile: p, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: p) }
        let (c, notes) = try RunConfig.load(file: p)
        XCTAssertEqual(c.model.arch, .densenetBC100)
        XCTAssertEqual(c.data.format, .cifar10)
        XCTAssertEqual(c.model.batchNorm, .nonAffine)
        XCTAssertFalse(c.um.enabled)
        XCTAssertEqual(c.umap.keepRatio, 0.8, "prune_rate is the KEPT fraction")
        XCTAssertTrue(c.umap.freezeWeights)
        XCTAssertEqual(c.evaluate.scores, [.msp, .energy])
        XCTAssertEqual(c.evaluate.explicitSets.map(\.name), ["Textures", "SVHN"])
        XCTAssertEqual(c.evaluate.oodManifest, "")
        XCTAssertTrue(notes.contains { $0.contains("bn_type") && $0.contains("non_affine") }, "\(notes)")
    }

    func testUntranslatableReferenceValueNamesTheKey() throws {
        let p = FileManager.default.temporaryDirectory.appendingPathComponent("ref-\(UUID().uuidString).yaml").path
        try "bn_type: GroupNorm\n".write(toFile: p, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: p) }
        XCTAssertThrowsError(try RunConfig.load(file: p)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("bn_type") && m.contains("NonAffineBatchNorm"), m)
        }
    }
}
