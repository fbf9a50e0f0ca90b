import Datasets
import Training
import XCTest

final class OODSetLoadingTests: XCTestCase {
    func testFolderOODSetIsDecodedToTheModelInputAndBadFilesAreCounted() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("oodfolder-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for i in 0..<3 {
            let img = DecodedImage(pixels: [UInt8](repeating: UInt8(40 * i), count: 3 * 40 * 50), channels: 3, height: 40, width: 50)
            try Data(try ImageEncoder.png(img)).write(to: URL(fileURLWithPath: dir + "/img\(i).png"))
        }
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: dir + "/broken.png"))
        var e = EvaluateSection()
        e.oodManifest = ""
        e.oodSets = [OODSetConfig(name: "folder", images: dir, synthetic: false)]
        let sets = try OODEvaluation.loadSets(e, imageSize: 28, channels: 1)
        XCTAssertEqual(sets.count, 1)
        XCTAssertEqual(sets[0].dataset.count, 3, "the broken file is skipped")
        XCTAssertEqual(sets[0].dataset.channels, 1)
        XCTAssertEqual(sets[0].dataset.height, 28)
        XCTAssertEqual(sets[0].dataset.width, 28)
    }

    func testMissingOODSetNamesTheSetAndPath() {
        var e = EvaluateSection()
        e.oodManifest = ""
        e.oodSets = [OODSetConfig(name: "svhn", images: "/nonexistent/svhn", synthetic: false)]
        XCTAssertThrowsError(try OODEvaluation.loadSets(e, imageSize: 28, channels: 1)) { err in
            let m = "\(err)"
            XCTAssertTrue(m.contains("svhn") && m.contains("/nonexistent/svhn"), m)
        }
    }
}

final class TuningLeakageTests: XCTestCase {
    func testValidationOODSetThatIsATestSetIsRefused() {
        var e = EvaluateSection()
        e.oodManifest = ""
        e.oodSets = [OODSetConfig(name: "mnist", images: "data/ood/mnist/images-idx3-ubyte.gz", synthetic: false)]
        e.validationOODSets = [OODSetConfig(name: "val", images: "./data/ood/mnist/images-idx3-ubyte.gz", synthetic: false)]
        XCTAssertThrowsError(try OODEvaluation.loadSets(e, imageSize: 28, channels: 1, validation: true)) { err in
            let m = "\(err)"
            XCTAssertTrue(m.contains("evaluate.validation_ood_sets") && m.contains("an OOD test set") && m.contains("F10"), m)
        }
        e.validationOODSets = [OODSetConfig()]
        XCTAssertEqual(try OODEvaluation.loadSets(e, imageSize: 28, channels: 1, validation: true).count, 0)
    }

    /// The guard used to compare path strings: a symbolic link to an OOD test set, or a copy of
    /// it under another name, was accepted for tuning. Real paths and contents are compared now.
    func testValidationSetThatIsALinkOrACopyOfATestSetIsRefused() throws {
        let dir = NSTemporaryDirectory() + "leak-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func idx(_ name: String, fill: UInt8) throws -> String {
            var bytes: [UInt8] = [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28]
            bytes += [UInt8](repeating: fill, count: 2 * 28 * 28)
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + name))
            return dir + "/" + name
        }
        let test = try idx("test-set", fill: 7)
        let other = try idx("other-set", fill: 9)
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: test)
        try FileManager.default.copyItem(atPath: test, toPath: dir + "/copy")
        var e = EvaluateSection()
        e.oodManifest = ""
        e.oodSets = [OODSetConfig(name: "test", images: test, synthetic: false)]
        for (path, how) in [(dir + "/link", "the same set as"), (dir + "/copy", "a copy of")] {
            e.validationOODSets = [OODSetConfig(name: "val", images: path, synthetic: false)]
            XCTAssertThrowsError(try OODEvaluation.loadSets(e, imageSize: 28, channels: 1, validation: true), path) { err in
                let m = "\(err)"
                XCTAssertTrue(m.contains("evaluate.validation_ood_sets") && m.contains(how) && m.contains("'test'"), m)
            }
        }
        e.validationOODSets = [OODSetConfig(name: "val", images: other, synthetic: false)]
        XCTAssertEqual(try OODEvaluation.loadSets(e, imageSize: 28, channels: 1, validation: true).count, 1)
    }

    /// An OOD set with no image used to fail only after the ID test set was scored, without
    /// naming it; an `evaluate.ood_sets` entry without `images` said the path "" was missing.
    func testEmptySetAndMissingImagesFieldAreRefusedAtLoadNamingTheSet() throws {
        let path = NSTemporaryDirectory() + "empty-\(UUID().uuidString).idx"
        try Data([0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28]).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        var e = EvaluateSection()
        e.oodManifest = ""
        e.oodSets = [OODSetConfig(name: "nothing", images: path, synthetic: false)]
        XCTAssertThrowsError(try OODEvaluation.loadSets(e, imageSize: 28, channels: 1)) { err in
            let m = "\(err)"
            XCTAssertTrue(m.contains("'nothing'") && m.contains(path) && m.contains("no image"), m)
        }
        let c = try RunConfig.load(file: nil, overrides: ["evaluate.ood_manifest=", "evaluate.ood_sets=[{name: svhn}]"]).config
        XCTAssertThrowsError(try OODEvaluation.checkSetPaths(c.evaluate)) { err in
            let m = "\(err)"
            XCTAssertTrue(m.contains("'svhn'") && m.contains("evaluate.ood_sets[0]") && m.contains("'images'"), m)
        }
    }
}
