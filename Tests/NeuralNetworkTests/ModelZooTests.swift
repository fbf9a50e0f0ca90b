import NeuralNetwork
import TensorCore
import TestSupport
import XCTest

/// Parameter counts of the model zoo against the reference PyTorch definitions, names of the
/// new models, and multiply-accumulate counts worked out by hand.
final class ModelZooTests: XCTestCase {
    /// kuangliu/pytorch-cifar ResNet18 at 3x32x32, 10 classes: 11,173,962.
    func testResnet18ParameterCountNamesAndShapes() {
        let model = Models.resnet18()
        XCTAssertEqual(model.trainableParameterCount, 11_173_962)
        let names = model.parameters.map(\.name)
        XCTAssertEqual(Array(names.prefix(4)), ["conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight"])
        XCTAssertTrue(names.contains("layer2.0.shortcut.0.weight"))
        XCTAssertTrue(names.contains("layer2.0.shortcut.1.bias"))
        XCTAssertFalse(names.contains("layer1.0.shortcut.0.weight"), "same shape: identity shortcut")
        XCTAssertFalse(names.contains("layer2.1.shortcut.0.weight"))
        XCTAssertEqual(Array(names.suffix(2)), ["linear.weight", "linear.bias"])
        let y = model.forward(randomTensor([1, 3, 32, 32], seed: 5), context: .eval)
        XCTAssertEqual(y.shape, [1, 10])
        XCTAssertEqual(model.penultimateFeatures?.shape, [1, 512])
        XCTAssertEqual(model.features.recordedOutputs[6]?.shape, [1, 512, 4, 4])
    }

    /// torchvision resnet50() at 1000 classes: 25,557,032 (construction only; no 224x224
    /// forward in debug tests).
    func testResnet50ParameterCountAndTorchvisionNames() {
        let model = Models.resnet50()
        XCTAssertEqual(model.trainableParameterCount, 25_557_032)
        let names = model.stateEntries().map(\.name)
        XCTAssertEqual(Array(names.prefix(3)), ["conv1.weight", "bn1.weight", "bn1.bias"])
        for n in ["layer1.0.downsample.0.weight", "layer1.0.downsample.1.running_var", "layer4.2.conv3.weight",
                  "layer4.2.bn3.num_batches_tracked", "layer3.5.bn2.bias"] {
            XCTAssertTrue(names.contains(n), n)
        }
        XCTAssertFalse(names.contains("layer1.1.downsample.0.weight"))
        XCTAssertEqual(Array(names.suffix(2)), ["fc.weight", "fc.bias"])
        // torchvision init: conv1 N(0, sqrt(2 / (64 * 49))) = N(0, 0.02525).
        let conv1 = model.features.layers[0] as! Conv2d
        let v = conv1.weight.value.scalars
        let mean = v.reduce(0, +) / Float(v.count)
        let std = (v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(v.count)).squareRoot()
        XCTAssertEqual(std, (2.0 / 3136.0).squareRoot(), accuracy: 0.001, "9,408 draws: std error about 0.7%")
        // Small-input forward exercises the bottleneck wiring (32x32 -> 1x1 at layer4).
        let small = Models.resnet50(numClasses: 7)
        XCTAssertEqual(small.forward(randomTensor([1, 3, 32, 32], seed: 6), context: .eval).shape, [1, 7])
        XCTAssertEqual(small.penultimateFeatures?.shape, [1, 2048])
    }

    func testWrn40x2AndDensenetAliases() {
        XCTAssertEqual(Models.wrn40_2().trainableParameterCount, 2_243_546)
        XCTAssertEqual(Models.densenet_bc100(affineBatchNorm: true).trainableParameterCount, 769_162)
        XCTAssertEqual(Models.densenet_bc100(affineBatchNorm: false).trainableParameterCount, 745_174)
    }

    /// cnn5 at 1x28x28, w = 32: conv MACs 28^2*32*1*9 + 28^2*32*32*9 + 14^2*64*32*9
    /// + 14^2*64*64*9 + 7^2*128*64*9 = 225,792 + 7,225,344 + 3,612,672 + 7,225,344 + 3,612,672
    /// = 21,901,824; linear 128 * 10 = 1,280; total 21,903,104 per image.
    func testCnn5MACsByHand() {
        let model = Models.cnn5()
        _ = model.forward(randomTensor([1, 1, 28, 28], seed: 7), context: .eval)
        XCTAssertEqual(model.lastForwardMACsInTree, 21_903_104)
        _ = model.forward(randomTensor([3, 1, 28, 28], seed: 7), context: .eval)
        XCTAssertEqual(model.lastForwardMACsInTree, 3 * 21_903_104, "whole-batch count")
    }

    /// ResNet-20 at 32x32 (option-A shortcuts have no MACs): stem 32^2*16*27 = 442,368;
    /// stage 1: 6 convs 32^2*16*144 = 2,359,296 each; stage 2: first conv 16^2*32*144 =
    /// 1,179,648, five convs 16^2*32*288 = 2,359,296; stage 3: 8^2*64*288 = 1,179,648, five
    /// 8^2*64*576 = 2,359,296; linear 640. Total 442,368 + 16 * 2,359,296 + 2 * 1,179,648 + 640
    /// = 40,551,040 (the "40.6 M" of the reference tables).
    func testResnet20MACsByHand() {
        let model = Models.resnet20()
        _ = model.forward(randomTensor([1, 3, 32, 32], seed: 8), context: .eval)
        let stem = 32 * 32 * 16 * 27
        let stage1 = 6 * (32 * 32 * 16 * 144)
        let stage2 = 16 * 16 * 32 * 144 + 5 * (16 * 16 * 32 * 288)
        let stage3 = 8 * 8 * 64 * 288 + 5 * (8 * 8 * 64 * 576)
        let expected = stem + stage1 + stage2 + stage3 + 64 * 10
        XCTAssertEqual(expected, 40_551_040)
        XCTAssertEqual(model.lastForwardMACsInTree, expected)
    }

    /// A conv and a linear layer alone: the counters follow the formula for odd shapes.
    func testLayerMACFormulas() {
        var rng = RandomStream(seed: 1, stream: [1])
        let conv = Conv2d(inChannels: 3, outChannels: 5, kernelSize: (3, 2), stride: (2, 1), padding: (1, 0), rng: &rng)
        let y = conv.forward(randomTensor([2, 3, 7, 6], seed: 9), context: .eval)
        XCTAssertEqual(y.shape, [2, 5, 4, 5])
        XCTAssertEqual(conv.lastForwardMACs, 2 * 5 * 4 * 5 * 3 * 3 * 2)
        let linear = Linear(inFeatures: 7, outFeatures: 4, rng: &rng)
        _ = linear.forward(randomTensor([3, 7], seed: 10), context: .eval)
        XCTAssertEqual(linear.lastForwardMACs, 3 * 7 * 4)
    }
}
