import Foundation
import XCTest
@testable import Datasets

final class ImageFolderTests: XCTestCase {
    /// ROOT/{cat,dog,ant}/..., mixed PNG/JPEG, upper-case extensions, a nested folder, a hidden
    /// file and a non-image file that must be ignored. Returns the root.
    private func makeClassFolder() throws -> String {
        let root = try ImageFixtures.temporaryDirectory(self)
        let fm = FileManager.default
        for name in ["cat", "dog", "ant"] { try fm.createDirectory(atPath: root + "/" + name, withIntermediateDirectories: true) }
        try fm.createDirectory(atPath: root + "/dog/puppies", withIntermediateDirectories: true)
        try ImageFixtures.writePNG(ImageFixtures.pattern(channels: 3, height: 10, width: 12, salt: 1), to: root + "/cat/b.png")
        try ImageFixtures.writePNG(ImageFixtures.pattern(channels: 1, height: 12, width: 10, salt: 2), to: root + "/cat/a.PNG")
        try ImageFixtures.writeJPEG(ImageFixtures.pattern(channels: 3, height: 16, width: 16, salt: 3), to: root + "/dog/z.jpeg")
        try ImageFixtures.writePNG(ImageFixtures.pattern(channels: 3, height: 8, width: 8, salt: 4), to: root + "/dog/puppies/p.png")
        try ImageFixtures.writeJPEG(ImageFixtures.pattern(channels: 1, height: 9, width: 9, salt: 5), to: root + "/ant/x.JPG")
        try "not an image".write(toFile: root + "/ant/readme.txt", atomically: true, encoding: .utf8)
        try ImageFixtures.write([1, 2, 3], to: root + "/cat/._b.png")         // hidden: ignored
        try ImageFixtures.writePNG(ImageFixtures.pattern(channels: 1, height: 4, width: 4), to: root + "/loose.png") // root file: ignored
        return root
    }

    func testClassFoldersAreSortedAndLabelledLikeTorchvision() throws {
        let root = try makeClassFolder()
        let index = try ImageFolderIndex.scan(root: root, layout: .classFolders)
        XCTAssertEqual(index.classNames, ["ant", "cat", "dog"])
        XCTAssertEqual(index.paths.map { String($0.dropFirst(root.count + 1)) },
                       ["ant/x.JPG", "cat/a.PNG", "cat/b.png", "dog/z.jpeg", "dog/puppies/p.png"])
        XCTAssertEqual(index.labels, [0, 1, 1, 2, 2])

        let loaded = try ImageFolder.load(root: root, layout: .classFolders, channels: 3,
                                          transform: ResizeCenterCrop(resizeShorterSide: 8, cropSize: 8))
        XCTAssertEqual(loaded.dataset.count, 5)
        XCTAssertEqual(loaded.dataset.labels, [0, 1, 1, 2, 2])
        XCTAssertEqual(loaded.dataset.ids, [0, 1, 2, 3, 4])
        XCTAssertEqual(loaded.dataset.classNames, ["ant", "cat", "dog"])
        XCTAssertEqual(loaded.dataset.channels, 3)
        XCTAssertEqual(loaded.dataset.height, 8)
        XCTAssertTrue(loaded.skipped.isEmpty)
        // The 8x8 PNG at id 4 passes through resize(8)+crop(8) unchanged.
        XCTAssertEqual(Array(loaded.dataset.image(at: 4)), ImageFixtures.pattern(channels: 3, height: 8, width: 8, salt: 4).pixels)
        // The 10x12 RGB PNG at id 2: decode, then the transform.
        let b = try ImageDecoder.decodeFile(root + "/cat/b.png", channels: 3)
        XCTAssertEqual(Array(loaded.dataset.image(at: 2)), ResizeCenterCrop(resizeShorterSide: 8, cropSize: 8).apply(b))
    }

    func testFlatFolderIsUnlabeledWithLabelZero() throws {
        let root = try makeClassFolder()
        let loaded = try ImageFolder.load(root: root, layout: .flat, channels: 1,
                                          transform: ResizeCenterCrop(resizeShorterSide: 6, cropSize: 4))
        // Flat: every image under the root, root files included, in sorted-walk order.
        XCTAssertEqual(loaded.index.paths.map { String($0.dropFirst(root.count + 1)) },
                       ["loose.png", "ant/x.JPG", "cat/a.PNG", "cat/b.png", "dog/z.jpeg", "dog/puppies/p.png"])
        XCTAssertEqual(loaded.dataset.labels, [0, 0, 0, 0, 0, 0])
        XCTAssertEqual(loaded.dataset.classCount, 1)
        XCTAssertEqual(loaded.dataset.channels, 1)
        XCTAssertEqual(loaded.dataset.images.count, 6 * 16)
    }

    func testEmptyFolderAndEmptyClassFolderThrow() throws {
        let root = try ImageFixtures.temporaryDirectory(self)
        for layout in FolderLayout.allCases {
            XCTAssertThrowsError(try ImageFolderIndex.scan(root: root, layout: layout)) { error in
                guard case let .emptyFolder(path, _)? = error as? ImageFileError else { return XCTFail("\(error)") }
                XCTAssertEqual(path, root)
                XCTAssertTrue("\(error)".contains("Hint:"))
            }
        }
        try FileManager.default.createDirectory(atPath: root + "/a", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/b", withIntermediateDirectories: true)
        try ImageFixtures.writePNG(ImageFixtures.pattern(channels: 1, height: 4, width: 4), to: root + "/a/1.png")
        try "x".write(toFile: root + "/b/notes.txt", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ImageFolderIndex.scan(root: root, layout: .classFolders)) { error in
            XCTAssertEqual(error as? ImageFileError,
                           .emptyFolder(path: root + "/b", detail: "class 'b' (label 1) has no image file"))
        }
        XCTAssertThrowsError(try ImageFolderIndex.scan(root: root + "/missing", layout: .flat)) { error in
            guard case .cannotList? = error as? ImageFileError else { return XCTFail("\(error)") }
        }
    }

    func testBadFileThrowsWithoutSkipAndIsSkippedAndCountedWithIt() throws {
        let root = try ImageFixtures.temporaryDirectory(self)
        for i in 0..<4 {
            try ImageFixtures.writePNG(ImageFixtures.pattern(channels: 3, height: 6, width: 6, salt: i), to: root + "/img\(i).png")
        }
        // A text file with a .jpg name, and a truncated PNG.
        try "<html>404</html>".write(toFile: root + "/img1b.jpg", atomically: true, encoding: .utf8)
        let good = try ImageEncoder.png(ImageFixtures.pattern(channels: 3, height: 30, width: 30))
        try ImageFixtures.write(Array(good.prefix(good.count / 2)), to: root + "/img3b.png")
        let transform = ResizeCenterCrop(resizeShorterSide: 6, cropSize: 6)

        XCTAssertThrowsError(try ImageFolder.load(root: root, layout: .flat, channels: 3, transform: transform)) { error in
            XCTAssertEqual(error as? ImageFileError, .notAnImage(path: root + "/img1b.jpg", found: "bytes 3C 68 74 6D 6C 3E 34 30"))
        }
        let loaded = try ImageFolder.load(root: root, layout: .flat, channels: 3, transform: transform, skipBadFiles: true)
        XCTAssertEqual(loaded.skipped.map(\.path), [root + "/img1b.jpg", root + "/img3b.png"])
        XCTAssertTrue(loaded.skipped[1].reason.contains("corrupt PNG"), loaded.skipped[1].reason)
        XCTAssertEqual(loaded.dataset.count, 4)
        // ids keep naming files: sorted order img0, img1, img1b, img2, img3, img3b.
        XCTAssertEqual(loaded.dataset.ids, [0, 1, 3, 4])
        XCTAssertEqual(Array(loaded.dataset.image(at: 2)), ImageFixtures.pattern(channels: 3, height: 6, width: 6, salt: 2).pixels)

        // A folder whose only image is bad: empty after skipping.
        let lonely = try ImageFixtures.temporaryDirectory(self, "lonely")
        try "text".write(toFile: lonely + "/a.png", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ImageFolder.load(root: lonely, layout: .flat, channels: 1, transform: transform, skipBadFiles: true)) { error in
            guard case .emptyFolder? = error as? ImageFileError else { return XCTFail("\(error)") }
        }
    }

    func testLazyFolderEqualsEagerLoadForEvaluation() throws {
        let root = try makeClassFolder()
        let transform = ResizeCenterCrop(resizeShorterSide: 9, cropSize: 7)
        let eager = try ImageFolder.load(root: root, channels: 1, transform: transform)
        let lazy = try LazyImageFolder(root: root, channels: 1, evaluation: transform)
        XCTAssertEqual(lazy.count, eager.dataset.count)
        var sample = [UInt8](repeating: 0, count: 49)
        for p in 0..<lazy.count {
            try sample.withUnsafeMutableBufferPointer { try lazy.sample(at: p, epoch: 0, into: $0) }
            XCTAssertEqual(sample, Array(eager.dataset.image(at: p)), "position \(p)")
            XCTAssertEqual(lazy.label(at: p), eager.dataset.labels[p])
        }
        // With a training transform the sample is the random-resized-crop of the decoded image.
        let rrc = RandomResizedCrop(size: 7, seed: 3)
        let training = LazyImageFolder(index: lazy.index, channels: 1, evaluation: transform, training: rrc)
        try sample.withUnsafeMutableBufferPointer { try training.sample(at: 3, epoch: 4, into: $0) }
        XCTAssertEqual(sample, rrc.apply(try lazy.decode(at: 3), id: 3, epoch: 4))
    }

    func testVerifiedIndexSkipsBadFilesUpFrontAndKeepsIds() throws {
        let root = try ImageFixtures.temporaryDirectory(self)
        for i in 0..<3 {
            try ImageFixtures.writePNG(ImageFixtures.pattern(channels: 3, height: 6, width: 6, salt: i), to: root + "/img\(i).png")
        }
        try "<html>404</html>".write(toFile: root + "/img0b.jpg", atomically: true, encoding: .utf8)
        let good = try ImageEncoder.jpeg(ImageFixtures.pattern(channels: 3, height: 30, width: 30))
        try ImageFixtures.write(Array(good.prefix(good.count / 2)), to: root + "/img1b.jpg")
        // Sorted: img0 (0), img0b (1, text), img1 (2), img1b (3, truncated), img2 (4).
        let index = try ImageFolderIndex.scan(root: root, layout: .flat)
        XCTAssertEqual(index.ids, [0, 1, 2, 3, 4])

        XCTAssertThrowsError(try index.verified(skipBadFiles: false, fullDecode: false)) { error in
            XCTAssertEqual(error as? ImageFileError, .notAnImage(path: root + "/img0b.jpg", found: "bytes 3C 68 74 6D 6C 3E 34 30"))
        }
        // Signature only: the text file goes, the truncated JPEG (valid signature) stays.
        let quick = try index.verified(skipBadFiles: true, fullDecode: false)
        XCTAssertEqual(quick.index.ids, [0, 2, 3, 4])
        XCTAssertEqual(quick.skipped.map(\.path), [root + "/img0b.jpg"])
        // Full decode: both go.
        let full = try index.verified(skipBadFiles: true, fullDecode: true)
        XCTAssertEqual(full.index.ids, [0, 2, 4])
        XCTAssertEqual(full.skipped.count, 2)
        XCTAssertTrue(full.skipped[1].reason.contains("corrupt JPEG"), full.skipped[1].reason)

        // A lazy folder over the verified index reports the original ids and keys the
        // augmentation by them; the eager reader with skipping agrees on ids.
        let evaluation = ResizeCenterCrop(resizeShorterSide: 6, cropSize: 6)
        let rrc = RandomResizedCrop(size: 6, seed: 4)
        let lazy = LazyImageFolder(index: full.index, channels: 3, evaluation: evaluation, training: rrc)
        XCTAssertEqual((0..<lazy.count).map { lazy.id(at: $0) }, [0, 2, 4])
        var sample = [UInt8](repeating: 0, count: 108)
        try sample.withUnsafeMutableBufferPointer { try lazy.sample(at: 2, epoch: 1, into: $0) }
        XCTAssertEqual(sample, rrc.apply(ImageFixtures.pattern(channels: 3, height: 6, width: 6, salt: 2), id: 4, epoch: 1))
        let eager = try ImageFolder.load(root: root, layout: .flat, channels: 3, transform: evaluation, skipBadFiles: true)
        XCTAssertEqual(eager.dataset.ids, [0, 2, 4])
        // Loading from the verified index's prefix keeps ids too.
        XCTAssertEqual(full.index.prefix(2).ids, [0, 2])
    }

    func testLazyLoaderPropagatesADecodeErrorNamingTheFile() throws {
        let root = try ImageFixtures.temporaryDirectory(self)
        for i in 0..<4 {
            try ImageFixtures.writePNG(ImageFixtures.pattern(channels: 1, height: 5, width: 5, salt: i), to: root + "/\(i).png")
        }
        try "oops".write(toFile: root + "/2.png", atomically: true, encoding: .utf8)
        let lazy = try LazyImageFolder(root: root, layout: .flat, channels: 1, evaluation: ResizeCenterCrop(resizeShorterSide: 5, cropSize: 5))
        let plans = [BatchPlan(epoch: 0, step: 0, positions: [0, 1]), BatchPlan(epoch: 0, step: 1, positions: [2, 3])]
        let loader = BatchLoader(source: lazy, plans: plans, normalizer: ChannelNormalizer(mean: [0], std: [1]))
        XCTAssertEqual(try loader.next()?.ids, [0, 1])
        XCTAssertThrowsError(try loader.next()) { error in
            XCTAssertEqual(error as? ImageFileError, .notAnImage(path: root + "/2.png", found: "bytes 6F 6F 70 73"))
        }
    }
}
