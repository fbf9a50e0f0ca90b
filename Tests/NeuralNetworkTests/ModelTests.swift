import NeuralNetwork
import TensorCore
import TestSupport
import XCTest

final class ModelTests: XCTestCase {
    /// 5 convs 288 + 9,216 + 18,432 + 36,864 + 73,728 = 138,528; affine BN 2 * (32 + 32 + 64 +
    /// 64 + 128) = 640; linear 128 * 10 + 10 = 1,290; total 140,458.
    func testCnn5ParameterCountAndNames() {
        let model = Models.cnn5()
        XCTAssertEqual(model.trainableParameterCount, 140_458)
        let names = model.stateEntries().map(\.name)
        XCTAssertEqual(Array(names.prefix(7)), [
            "features.0.weight", "features.1.weight", "features.1.bias", "features.1.running_mean",
            "features.1.running_var", "features.1.num_batches_tracked", "features.3.weight",
        ])
        XCTAssertEqual(Array(names.suffix(2)), ["classifier.weight", "classifier.bias"])
        XCTAssertEqual(model.parameters.first?.name, "features.0.weight")
        let y = model.forward(randomTensor([2, 1, 28, 28], seed: 1), context: .eval)
        XCTAssertEqual(y.shape, [2, 10])
        XCTAssertEqual(model.penultimateFeatures?.shape, [2, 128])
        XCTAssertEqual(model.features.recordedOutputs[5]?.shape, [2, 32, 28, 28])
        XCTAssertEqual(model.features.recordedOutputs[12]?.shape, [2, 64, 14, 14])
        XCTAssertEqual(model.features.recordedOutputs[16]?.shape, [2, 128, 7, 7])
    }

    func testLenetParameterCount() {
        // conv 156 + 2,416; fc 48,120 + 10,164 + 850 = 61,706 (1x28x28); conv1 456 for 3x32x32.
        XCTAssertEqual(Models.lenet().trainableParameterCount, 61_706)
        let colour = Models.lenet(inChannels: 3, inputSize: 32)
        XCTAssertEqual(colour.trainableParameterCount, 62_006)
        XCTAssertEqual(colour.forward(randomTensor([1, 3, 32, 32], seed: 2), context: .eval).shape, [1, 10])
        XCTAssertEqual(colour.penultimateFeatures?.shape, [1, 84])
    }

    /// PyTorch default init: weights and biases in U(-1/sqrt(fanIn), 1/sqrt(fanIn)); same seed
    /// gives the same model, another seed a different one.
    func testInitialisationBoundsAndDeterminism() {
        let a = Models.cnn5(seed: 7), b = Models.cnn5(seed: 7), c = Models.cnn5(seed: 8)
        let conv = a.features.layers[3] as! Conv2d  // fanIn 32 * 9 = 288
        let bound = 1 / Float(288).squareRoot()
        XCTAssertLessThanOrEqual(conv.weight.value.maxAbs(), bound)
        XCTAssertGreaterThan(conv.weight.value.maxAbs(), 0.95 * bound, "9,216 uniform draws should reach near the bound")
        XCTAssertLessThanOrEqual(a.classifier.bias!.value.maxAbs(), 1 / Float(128).squareRoot())
        XCTAssertEqual(a.classifier.weight.value.scalars, b.classifier.weight.value.scalars)
        XCTAssertNotEqual(a.classifier.weight.value.scalars, c.classifier.weight.value.scalars)
        let mean = conv.weight.value.mean()
        XCTAssertEqual(mean, 0, accuracy: 0.003, "U(-b, b) mean: standard error b/sqrt(3 * 9216) = 3.5e-4")
    }

    func testArenaAdoptsParametersInOrderAndZeroesWithOneMemset() {
        let model = Models.cnn5(inChannels: 1, numClasses: 3, width: 2, seed: 1)
        let before = model.parameters.map { $0.value.scalars }
        let arena = ParameterArena(parameters: model.parameters)
        XCTAssertEqual(arena.count, model.trainableParameterCount)
        XCTAssertEqual(arena.values.scalars, before.flatMap { $0 }, "values copied in registration order")
        for (p, off) in zip(arena.parameters, arena.offsets) {
            XCTAssertEqual(p.value.offset, off)
            XCTAssertTrue(p.grad.sharesStorage(with: arena.gradients))
        }
        // A training step writes gradients straight into the arena.
        let r = softmaxCrossEntropy(logits: model.forward(randomTensor([2, 1, 4, 4], seed: 2), context: ForwardContext(mode: .train)),
                                    labels: [0, 2])
        _ = model.backward(r.logitsGradient)
        XCTAssertEqual(arena.gradients.scalars, model.parameters.flatMap { $0.grad.scalars })
        XCTAssertGreaterThan(arena.gradients.maxAbs(), 0)
        arena.zeroGradients()
        XCTAssertEqual(model.parameters.map { $0.grad.maxAbs() }.max(), 0)
        // Writing the arena's values changes the model's parameters.
        var flat = arena.values
        flat.withUnsafeMutableBufferPointer { $0[0] = 42 }
        XCTAssertEqual(model.parameters[0].value.scalars[0], 42)
        let buffers = ParameterArena(parameters: model.buffers, withGradients: false)
        XCTAssertEqual(buffers.count, 2 * (2 + 2 + 4 + 4 + 8))
        XCTAssertEqual(buffers.gradients.count, 0)
    }

    /// The dropout mask of a sample depends on (seed, epoch, sample id, layer) only, not on
    /// its row or batch; the kept fraction is about 1 - p; kept values are scaled by 1/(1-p).
    func testDropoutMaskIsKeyedBySampleID() {
        let drop = Dropout(p: 0.3, layerIndex: 4)
        let x = Tensor(shape: [3, 2000], filledWith: 1)
        let full = drop.forward(x, context: ForwardContext(mode: .train, seed: 9, epoch: 1, sampleIDs: [100, 101, 102])).scalars
        let single = drop.forward(Tensor(shape: [1, 2000], filledWith: 1),
                                  context: ForwardContext(mode: .train, seed: 9, epoch: 1, sampleIDs: [101])).scalars
        XCTAssertEqual(Array(full[2000..<4000]), single)
        let other = drop.forward(Tensor(shape: [1, 2000], filledWith: 1),
                                 context: ForwardContext(mode: .train, seed: 9, epoch: 2, sampleIDs: [101])).scalars
        XCTAssertNotEqual(other, single, "another epoch gives another mask")
        let kept = full.filter { $0 != 0 }
        XCTAssertEqual(Double(kept.count) / 6000, 0.7, accuracy: 0.03, "binomial sd 0.006")
        XCTAssertTrue(kept.allSatisfy { abs($0 - 1 / 0.7) < 1e-6 })
        XCTAssertEqual(drop.forward(x, context: .eval).scalars, x.scalars)
    }

    /// Overfit 16 random samples with random labels: a small cnn5 reaches 100% training
    /// accuracy and loss < 0.05 with plain SGD + momentum (written here; Optimizers is another
    /// module).
    func testOverfitSixteenSamples() {
        let model = Models.cnn5(inChannels: 1, numClasses: 4, width: 8, seed: 11)
        let arena = ParameterArena(parameters: model.parameters)
        let x = randomTensor([16, 1, 8, 8], seed: 12)
        var rng = RandomStream(seed: 13)
        let labels = (0..<16).map { _ in Int(rng.nextUInt32() % 4) }
        var velocity = Tensor(zeros: [arena.count])
        let ctx = ForwardContext(mode: .train, sampleIDs: (0..<16).map { Int64($0) })
        var loss = Double.infinity
        var accuracy = 0.0
        for _ in 0..<150 {
            arena.zeroGradients()
            let logits = model.forward(x, context: ctx)
            let r = softmaxCrossEntropy(logits: logits, labels: labels)
            loss = r.meanLoss
            let l = logits.scalars
            accuracy = Double((0..<16).filter { i in
                let row = l[(i * 4)..<(i * 4 + 4)]
                return row.firstIndex(of: row.max()!)! - i * 4 == labels[i]
            }.count) / 16
            if loss < 0.05 && accuracy == 1 { break }
            _ = model.backward(r.logitsGradient)
            // v = 0.9 v + g; w -= 0.05 v
            velocity.withUnsafeMutableBufferPointer { v in
                arena.gradients.withUnsafeBufferPointer { g in
                    var w = arena.values
                    w.withUnsafeMutableBufferPointer { wb in
                        for i in 0..<v.count { v[i] = 0.9 * v[i] + g[i]; wb[i] -= 0.05 * v[i] }
                    }
                }
            }
        }
        XCTAssertEqual(accuracy, 1)
        XCTAssertLessThan(loss, 0.05)
    }

    func testResnet20ParameterCountNamesAndShapes() {
        let model = Models.resnet20()
        XCTAssertEqual(model.trainableParameterCount, 269_722)
        let names = model.parameters.map(\.name)
        XCTAssertEqual(Array(names.prefix(4)), ["conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight"])
        XCTAssertTrue(names.contains("layer3.2.bn2.bias"))
        XCTAssertEqual(Array(names.suffix(2)), ["linear.weight", "linear.bias"])
        let y = model.forward(randomTensor([1, 3, 32, 32], seed: 3), context: .eval)
        XCTAssertEqual(y.shape, [1, 10])
        XCTAssertEqual(model.penultimateFeatures?.shape, [1, 64])
        XCTAssertEqual(model.features.recordedOutputs[5]?.shape, [1, 64, 8, 8])
    }

    func testDensenetBC100ParameterCountsAndNames() {
        let model = Models.densenetBC100()
        XCTAssertEqual(model.trainableParameterCount, 745_174)
        XCTAssertEqual(Models.densenetBC100(affineBatchNorm: true).trainableParameterCount, 769_162)
        let names = model.stateEntries().map(\.name)
        XCTAssertEqual(Array(names.prefix(5)), ["conv1.weight", "block1.layer.0.bn1.running_mean",
                                                "block1.layer.0.bn1.running_var", "block1.layer.0.bn1.num_batches_tracked",
                                                "block1.layer.0.conv1.weight"])
        XCTAssertTrue(names.contains("trans2.conv1.weight"))
        XCTAssertTrue(names.contains("block3.layer.15.conv2.weight"))
        XCTAssertEqual(Array(names.suffix(5)), ["bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
                                                "fc.weight", "fc.bias"])
        XCTAssertEqual(model.classifier.inFeatures, 342)
        XCTAssertEqual(model.classifier.bias!.value.maxAbs(), 0)
    }

    func testDensenetForwardShapesWithDropout() {
        let model = Models.densenetBC100(dropRate: 0.3)
        let x = randomTensor([2, 3, 32, 32], seed: 4)
        let y = model.forward(x, context: ForwardContext(mode: .train, sampleIDs: [5, 6]))
        XCTAssertEqual(y.shape, [2, 10])
        XCTAssertEqual(model.penultimateFeatures?.shape, [2, 342])
        XCTAssertEqual(model.features.recordedOutputs[1]?.shape, [2, 216, 32, 32])
        XCTAssertEqual(model.backward(Tensor(shape: [2, 10], filledWith: 0.1)).shape, x.shape)
    }

    func testWideResNet40x2ParameterCountAndNames() {
        let model = Models.wideResNet()
        XCTAssertEqual(model.trainableParameterCount, 2_243_546)
        let names = model.parameters.map(\.name)
        XCTAssertEqual(Array(names.prefix(4)), ["conv1.weight", "block1.layer.0.bn1.weight", "block1.layer.0.bn1.bias",
                                                "block1.layer.0.conv1.weight"])
        XCTAssertTrue(names.contains("block2.layer.0.convShortcut.weight"))
        XCTAssertFalse(names.contains("block2.layer.1.convShortcut.weight"))
        XCTAssertEqual(Array(names.suffix(4)), ["bn1.weight", "bn1.bias", "fc.weight", "fc.bias"])
    }
}
