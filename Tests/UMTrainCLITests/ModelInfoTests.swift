import ArgumentParser
import Training
@testable import Benchmarks
import CommandSupport
@testable import UMTrainCLI
import XCTest

final class ModelInfoTests: XCTestCase {
    private func section(_ arch: ModelArchitecture, channels: Int = 3, size: Int = 32) -> ModelSection {
        var m = ModelSection()
        m.arch = arch
        m.inChannels = channels
        m.imageSize = size
        return m
    }

    /// ResNet-20 at 32x32: 40,551,040 MACs (worked out layer by layer in ModelZooTests);
    /// its largest conv GEMM at batch 128 is a stage-3 3x3 conv, 64 x (16 images x 8 x 8) x 576
    /// (stage 1 has the same MACs per call, 16 x (1 image x 32 x 32) x 144, but a smaller K).
    func testResnet20Report() throws {
        let r = try ModelInfoReport.measure(section(.resnet20), gemmBatch: 128)
        XCTAssertEqual(r.trainableParameters, 269_722)
        XCTAssertEqual(r.forwardMACsPerImage, 40_551_040)
        XCTAssertEqual(r.convLayers, 19)
        XCTAssertEqual(r.linearLayers, 1)
        XCTAssertEqual(r.int64Buffers, 19)
        XCTAssertEqual(r.floatStateScalars, 269_722 + 2 * (16 + 6 * 16 + 6 * 32 + 6 * 64))
        let g = try XCTUnwrap(r.largestConvGemm)
        XCTAssertEqual([g.m, g.n, g.k], [64, 1024, 576])
        XCTAssertEqual(g.layer, "layer3.0.conv2")
        // The per-layer GEMM MACs (full batch of 1) add up to the conv part of the total.
        let one = try ModelInfoReport.measure(section(.resnet20), gemmBatch: 1)
        XCTAssertEqual(one.convGemms.reduce(0) { $0 + $1.macs } + 640, 40_551_040)
    }

    /// cnn5 at 1x28x28: 21,903,104 MACs (ModelZooTests works it out).
    func testCnn5Report() throws {
        let r = try ModelInfoReport.measure(section(.cnn5, channels: 1, size: 28))
        XCTAssertEqual(r.forwardMACsPerImage, 21_903_104)
        XCTAssertEqual(r.trainableParameters, 140_458)
    }

    func testGroupedDigits() {
        XCTAssertEqual(grouped(0), "0")
        XCTAssertEqual(grouped(999), "999")
        XCTAssertEqual(grouped(1000), "1,000")
        XCTAssertEqual(grouped(25_557_032), "25,557,032")
        XCTAssertEqual(grouped(-1_234), "-1,234")
    }

    func testBatchShareSplitsTheGlobalBatch() {
        XCTAssertEqual((0..<3).map { BenchTrain.share(batch: 128, rank: $0, worldSize: 3) }, [43, 43, 42])
        XCTAssertEqual((0..<2).map { BenchTrain.share(batch: 128, rank: $0, worldSize: 2) }, [64, 64])
    }

    func testCommandLineParsing() throws {
        let cmd = try UMTrain.parseAsRoot(["bench", "train", "--arch", "wrn40_2", "--batch", "64", "--steps", "12"])
        let b = try XCTUnwrap(cmd as? BenchTrain)
        XCTAssertEqual(b.model.arch, .wrn40_2)
        XCTAssertEqual(b.batch, 64)
        XCTAssertEqual(b.steps, 12)
        let info = try XCTUnwrap(try UMTrain.parseAsRoot(["model-info", "--arch", "densenet_bc100", "--batch-norm", "non_affine"])
                                 as? ModelInfoCommand)
        XCTAssertEqual(info.model.section.batchNorm, .nonAffine)
        XCTAssertThrowsError(try UMTrain.parseAsRoot(["model-info", "--arch", "vgg16"])) { error in
            XCTAssertTrue(UMTrain.message(for: error).contains("--arch"), UMTrain.message(for: error))
        }
        XCTAssertThrowsError(try UMTrain.parseAsRoot(["model-info", "--batch-norm", "frozen"])) { error in
            XCTAssertTrue(UMTrain.message(for: error).contains("--batch-norm"), UMTrain.message(for: error))
        }
        XCTAssertThrowsError(try UMTrain.parseAsRoot(["bench", "train", "--bn-mode", "ghost"]))
    }
}
