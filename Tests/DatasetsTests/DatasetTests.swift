import XCTest
@testable import Datasets

final class DatasetTests: XCTestCase {
    private func makeDataset(count: Int) -> ImageDataset {
        // [N, 2, 2, 3]: pixel value encodes (sample, index) so copies can be checked.
        let bytes = 2 * 2 * 3
        let images = (0..<(count * bytes)).map { UInt8(truncatingIfNeeded: $0 * 7 + $0 / bytes) }
        return ImageDataset(images: images, labels: (0..<count).map { $0 % 4 }, channels: 2, height: 2, width: 3,
                            classCount: 4, classNames: ["a", "b", "c", "d"])
    }

    func testValidationSplitIsDisjointCoveringAndDeterministic() {
        let data = makeDataset(count: 50)
        let split = data.validationSplit(validationSize: 12, seed: 5)
        XCTAssertEqual(split.validationIds.count, 12)
        XCTAssertEqual(split.trainIds.count, 38)
        XCTAssertTrue(Set(split.trainIds).isDisjoint(with: split.validationIds))
        XCTAssertEqual((split.trainIds + split.validationIds).sorted(), Array(0..<50))
        XCTAssertEqual(split.trainIds, split.trainIds.sorted())
        XCTAssertEqual(data.validationSplit(validationSize: 12, seed: 5), split)
        XCTAssertNotEqual(data.validationSplit(validationSize: 12, seed: 6).validationIds, split.validationIds)
        // Not simply the first or last ids.
        XCTAssertNotEqual(split.validationIds, Array(0..<12))
        XCTAssertNotEqual(split.validationIds, Array(38..<50))
        XCTAssertEqual(data.validationSplit(validationSize: 0, seed: 5).trainIds, Array(0..<50))
        XCTAssertEqual(data.validationSplit(validationSize: 50, seed: 5).validationIds, Array(0..<50))
    }

    func testSubsetKeepsIdsPixelsAndLabels() {
        let data = makeDataset(count: 10)
        let sub = data.subset(ids: [7, 2, 9])
        XCTAssertEqual(sub.ids, [7, 2, 9])
        XCTAssertEqual(sub.labels, [3, 2, 1])
        XCTAssertEqual(Array(sub.image(at: 0)), Array(data.image(at: 7)))
        XCTAssertEqual(Array(sub.image(at: 2)), Array(data.image(at: 9)))
        XCTAssertEqual(sub.classNames, data.classNames)
        // A subset of a subset is addressed by the original ids.
        let subsub = sub.subset(ids: [9])
        XCTAssertEqual(subsub.ids, [9])
        XCTAssertEqual(Array(subsub.image(at: 0)), Array(data.image(at: 9)))
        XCTAssertEqual(sub.positions(ofIds: [2, 9, 7]), [1, 2, 0])
    }

    func testLabelHistogram() {
        XCTAssertEqual(makeDataset(count: 10).labelHistogram(), [3, 3, 2, 2])
    }

    func testNormalizerMatchesFormulaExactly() {
        let mean: [Float] = [0.4914, 0.4822, 0.4465]
        let std: [Float] = [0.2470, 0.2435, 0.2616]
        let normalizer = ChannelNormalizer(mean: mean, std: std)
        let n = 2, plane = 4
        let source = (0..<(n * 3 * plane)).map { UInt8(($0 * 37) % 256) }
        var out = [Float](repeating: .nan, count: source.count)
        source.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { normalizer.normalize(src, planeSize: plane, into: $0) }
        }
        for i in 0..<source.count {
            let c = (i / plane) % 3
            let expected = (Float(source[i]) / 255 - mean[c]) / std[c]
            XCTAssertEqual(out[i], expected, "element \(i), channel \(c)")
        }
        let half = ChannelNormalizer(mean: [0.5], std: [0.5])
        XCTAssertEqual(half.table[0], -1)
        XCTAssertEqual(half.table[255], 1)
    }

    func testNormalizedBatchGathersInOrder() {
        let data = makeDataset(count: 5)
        let normalizer = ChannelNormalizer(mean: [0.25, 0.75], std: [0.5, 2])
        var out = [Float](repeating: .nan, count: 2 * data.sampleBytes)
        out.withUnsafeMutableBufferPointer { data.normalizedBatch(positions: [4, 1], normalizer: normalizer, into: $0) }
        for (k, p) in [4, 1].enumerated() {
            let img = Array(data.image(at: p))
            for i in 0..<data.sampleBytes {
                let c = i / 6
                XCTAssertEqual(out[k * data.sampleBytes + i], (Float(img[i]) / 255 - normalizer.mean[c]) / normalizer.std[c])
            }
        }
        XCTAssertEqual(data.labels(at: [4, 1]), [0, 1])
    }
}
