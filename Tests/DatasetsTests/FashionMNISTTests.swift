import XCTest
@testable import Datasets

/// Reads the real Fashion-MNIST files of Debian's `dataset-fashion-mnist` package when installed.
final class FashionMNISTTests: XCTestCase {
    func testRealFilesCountsAndHistogram() throws {
        let directory = FashionMNIST.debianDirectory
        guard FileBytes.exists(directory + "/train-labels-idx1-ubyte.gz") else {
            throw XCTSkip("\(directory) absent (apt-get install dataset-fashion-mnist)")
        }
        let train = try FashionMNIST.load(directory: directory, split: .train)
        let test = try FashionMNIST.load(directory: directory, split: .test)
        XCTAssertEqual(train.count, 60_000)
        XCTAssertEqual(test.count, 10_000)
        XCTAssertEqual([train.channels, train.height, train.width], [1, 28, 28])
        XCTAssertEqual(train.labelHistogram(), [Int](repeating: 6_000, count: 10))
        XCTAssertEqual(test.labelHistogram(), [Int](repeating: 1_000, count: 10))
        XCTAssertEqual(train.classNames, FashionMNIST.classNames)
        // The commonly quoted normalisation constant of the training set: mean 0.2860 (of x/255).
        let sum = train.images.withUnsafeBufferPointer { $0.reduce(0) { $0 + Int($1) } }
        let mean = Double(sum) / Double(train.images.count) / 255
        XCTAssertEqual(mean, 0.2860, accuracy: 0.0005)
    }
}
