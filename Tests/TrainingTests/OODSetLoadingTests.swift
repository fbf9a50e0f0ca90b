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
}
