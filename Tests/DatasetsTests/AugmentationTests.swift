import XCTest
@testable import Datasets

final class AugmentationTests: XCTestCase {
    /// Naive twin: build the zero-padded image, crop, then mirror.
    private func naive(_ image: [UInt8], c: Int, h: Int, w: Int, p: Int, top: Int, left: Int, flip: Bool) -> [UInt8] {
        let ph = h + 2 * p, pw = w + 2 * p
        var padded = [UInt8](repeating: 0, count: c * ph * pw)
        for ch in 0..<c { for y in 0..<h { for x in 0..<w {
            padded[ch * ph * pw + (y + p) * pw + (x + p)] = image[ch * h * w + y * w + x]
        } } }
        var out = [UInt8](repeating: 0, count: c * h * w)
        for ch in 0..<c { for y in 0..<h { for x in 0..<w {
            let v = padded[ch * ph * pw + (y + top) * pw + (x + left)]
            out[ch * h * w + y * w + (flip ? w - 1 - x : x)] = v
        } } }
        return out
    }

    private func run(_ aug: Augmentation, _ image: [UInt8], c: Int, h: Int, w: Int, id: Int, epoch: Int) -> [UInt8] {
        var out = [UInt8](repeating: 99, count: image.count)
        image.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { aug.apply(src, channels: c, height: h, width: w, id: id, epoch: epoch, into: $0) }
        }
        return out
    }

    func testMatchesNaivePadCropFlip() {
        let c = 3, h = 5, w = 6
        let image = (0..<(c * h * w)).map { UInt8(1 + $0) }
        let aug = Augmentation(cropPadding: 2, horizontalFlip: true, seed: 11)
        var seenFlip = Set<Bool>(), seenTop = Set<Int>(), seenLeft = Set<Int>()
        for id in 0..<200 {
            let (top, left, flip) = aug.parameters(id: id, epoch: 3)
            seenFlip.insert(flip); seenTop.insert(top); seenLeft.insert(left)
            XCTAssertEqual(run(aug, image, c: c, h: h, w: w, id: id, epoch: 3),
                           naive(image, c: c, h: h, w: w, p: 2, top: top, left: left, flip: flip), "id \(id)")
        }
        XCTAssertEqual(seenFlip, [false, true])
        XCTAssertEqual(seenTop, Set(0...4))
        XCTAssertEqual(seenLeft, Set(0...4))
    }

    func testWorkedExampleShiftAndFlip() {
        // 1 channel, 2x3 image, padding 1. top 0, left 2: shift up-left by (-1, +1) in source coordinates.
        let image: [UInt8] = [1, 2, 3,
                              4, 5, 6]
        XCTAssertEqual(naive(image, c: 1, h: 2, w: 3, p: 1, top: 0, left: 2, flip: false), [0, 0, 0, 2, 3, 0])
        XCTAssertEqual(naive(image, c: 1, h: 2, w: 3, p: 1, top: 1, left: 1, flip: true), [3, 2, 1, 6, 5, 4])
    }

    func testDisabledIsIdentityAndDrawsAreKeyedBySeedEpochId() {
        let image = (0..<(2 * 4 * 4)).map { UInt8($0 * 3) }
        let off = Augmentation(cropPadding: 0, horizontalFlip: false, seed: 1)
        XCTAssertEqual(run(off, image, c: 2, h: 4, w: 4, id: 5, epoch: 0), image)
        let aug = Augmentation(seed: 1)
        XCTAssertEqual(aug.parameters(id: 5, epoch: 2).top, Augmentation(seed: 1).parameters(id: 5, epoch: 2).top)
        let byEpoch = (0..<20).map { e -> [Int] in let p = aug.parameters(id: 5, epoch: e); return [p.top, p.left, p.flip ? 1 : 0] }
        XCTAssertGreaterThan(Set(byEpoch).count, 5, "draws must change between epochs")
        let bySeed = (0..<20).map { s -> [Int] in let p = Augmentation(seed: UInt64(s)).parameters(id: 5, epoch: 0); return [p.top, p.left] }
        XCTAssertGreaterThan(Set(bySeed).count, 5)
    }

    func testAugmentedBatchUsesGlobalIds() {
        let images = (0..<(3 * 16)).map { UInt8($0 * 5 % 256) }
        let data = ImageDataset(images: images, labels: [0, 1, 0], ids: [40, 41, 42], channels: 1, height: 4, width: 4, classCount: 2)
        let aug = Augmentation(cropPadding: 1, seed: 3)
        let normalizer = ChannelNormalizer(mean: [0], std: [1])
        var out = [Float](repeating: .nan, count: 2 * 16)
        out.withUnsafeMutableBufferPointer {
            data.augmentedNormalizedBatch(positions: [2, 0], augmentation: aug, epoch: 7, normalizer: normalizer, into: $0)
        }
        for (k, p) in [2, 0].enumerated() {
            let expected = run(aug, Array(data.image(at: p)), c: 1, h: 4, w: 4, id: data.ids[p], epoch: 7)
            XCTAssertEqual(Array(out[(k * 16)..<((k + 1) * 16)]), expected.map { Float($0) / 255 })
        }
    }
}
