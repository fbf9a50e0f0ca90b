import NeuralNetwork
import Training
import XCTest

final class ModelFactoryTests: XCTestCase {
    private func section(_ arch: ModelArchitecture, channels: Int = 3, size: Int = 32, classes: Int = 10,
                         batchNorm: BatchNormKind = .affine) -> ModelSection {
        var m = ModelSection()
        m.arch = arch
        m.inChannels = channels
        m.imageSize = size
        m.numClasses = classes
        m.batchNorm = batchNorm
        return m
    }

    /// Every listed architecture is buildable, with the reference parameter counts.
    func testEveryArchitectureBuildsWithReferenceCounts() throws {
        let expected: [ModelArchitecture: Int] = [
            .cnn5: 141_034,  // 140,458 at 1 channel; 3 channels: first conv 32*3*9 = 864 instead of 288
            .lenet: 62_006, .resnet20: 269_722, .resnet18: 11_173_962, .wrn40_2: 2_243_546,
            .densenetBC100: 769_162, .resnet50: 23_528_522,  // 10 classes: 25,557,032 - 2049 * 990
        ]
        XCTAssertEqual(Set(expected.keys), Set(ModelArchitecture.allCases))
        for arch in ModelArchitecture.allCases {
            let model = try ModelFactory.make(section(arch), seed: 0)
            XCTAssertEqual(model.trainableParameterCount, expected[arch], arch.rawValue)
        }
        XCTAssertEqual(try ModelFactory.make(section(.densenetBC100, batchNorm: .nonAffine), seed: 0).trainableParameterCount,
                       745_174)
        XCTAssertEqual(try ModelFactory.make(section(.resnet50, size: 224, classes: 1000), seed: 0).trainableParameterCount,
                       25_557_032)
    }

    func testUnknownArchitectureAndTooSmallInputThrow() {
        // An unknown architecture cannot be built: the config refuses it with the zoo's names.
        XCTAssertThrowsError(try RunConfig.load(file: nil, overrides: ["model.arch=resnet19"])) { error in
            let m = "\(error)"
            XCTAssertTrue(m.contains("resnet19") && ModelArchitecture.allCases.allSatisfy { m.contains($0.rawValue) }, m)
        }
        XCTAssertThrowsError(try ModelFactory.make(section(.resnet50, size: 16), seed: 0)) { error in
            XCTAssertTrue("\(error)".contains("image_size"), "\(error)")
        }
    }
}
