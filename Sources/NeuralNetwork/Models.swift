import TensorCore

/// An image classifier: `features` (ending in a `[N, D]` penultimate representation) followed
/// by a linear `classifier`: `x [N, C, H, W] => logits [N, K]`.
///
/// Names: `<featuresName>.<child>.<param>` and `<classifierName>.<param>` (defaults
/// `features.<i>...` with PyTorch `nn.Sequential` numbering and `classifier...`). With
/// `featuresName == nil` the feature children sit at the top level (e.g. ResNet's `conv1`,
/// `layer1.0.conv1`, `linear`), matching the reference PyTorch definitions.
/// After each forward, `penultimateFeatures` holds the `[N, D]` input of the classifier and
/// `features.recordedOutputs` the feature maps at `features.recordedIndices`.
public final class Classifier: Layer {
    public let features: Sequential
    public let classifier: Linear
    public let featuresName: String?
    public let classifierName: String
    public private(set) var penultimateFeatures: Tensor?

    public init(features: Sequential, classifier: Linear, featuresName: String? = "features",
                classifierName: String = "classifier") {
        self.features = features
        self.classifier = classifier
        self.featuresName = featuresName
        self.classifierName = classifierName
        assignNames()
    }

    public var children: [(name: String, layer: any Layer)] {
        let head: [(name: String, layer: any Layer)] = featuresName.map { [($0, features)] } ?? features.children
        return head + [(classifierName, classifier)]
    }

    public func forward(_ x: Tensor, context: ForwardContext) -> Tensor {
        let f = features.forward(x, context: context)
        penultimateFeatures = f
        return classifier.forward(f, context: context)
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        let g = classifier.backward(gradOutput)
        BackwardProgress.observer?(classifier)
        return features.backward(g)
    }
}

/// Model constructors. Each draws its PyTorch-default initialisation from
/// `RandomStream(seed: seed, stream: [0x494E4954])` ("INIT"), layer by layer in order.
public enum Models {
    /// `cnn5`: five [conv3x3 (no bias) - BatchNorm2d - ReLU] blocks with widths
    /// `w, w, (maxpool 2), 2w, 2w, (maxpool 2), 4w`, then global average pooling and
    /// `Linear(4w, numClasses)`. `x [N, inChannels, H, W] => [N, numClasses]`; penultimate
    /// features `[N, 4w]`. For 1x28x28 input, w = 32 and 10 classes: 140,458 parameters
    /// (affine BN). `features` indices: conv 0, 3, 7, 10, 14; BN 1, 4, 8, 11, 15; ReLU 2, 5,
    /// 9, 12, 16; max-pool 6, 13; global pool 17. Recorded feature maps: ReLU outputs 5, 12, 16.
    public static func cnn5(inChannels: Int = 1, numClasses: Int = 10, width w: Int = 32, affineBatchNorm: Bool = true,
                            seed: UInt64 = 0) -> Classifier {
        var rng = RandomStream(seed: seed, stream: [0x494E_4954])
        var layers: [any Layer] = []
        func block(_ cin: Int, _ cout: Int) {
            layers.append(Conv2d(inChannels: cin, outChannels: cout, kernelSize: 3, padding: 1, bias: false, rng: &rng))
            layers.append(BatchNorm2d(numFeatures: cout, affine: affineBatchNorm))
            layers.append(ReLU())
        }
        block(inChannels, w)
        block(w, w)
        layers.append(MaxPool2d(kernelSize: 2))
        block(w, 2 * w)
        block(2 * w, 2 * w)
        layers.append(MaxPool2d(kernelSize: 2))
        block(2 * w, 4 * w)
        layers.append(GlobalAvgPool2d())
        let features = Sequential(layers)
        features.recordedIndices = [5, 12, 16]
        return Classifier(features: features,
                          classifier: Linear(inFeatures: 4 * w, outFeatures: numClasses, rng: &rng))
    }

    /// LeNet-5 (ReLU, max-pool): conv5x5(inChannels -> 6, padding 2 for 28x28 input, else 0) -
    /// ReLU - maxpool 2 - conv5x5(6 -> 16) - ReLU - maxpool 2 - flatten (16*5*5) - Linear 120 -
    /// ReLU - Linear 84 - ReLU, classifier Linear(84, numClasses). Input `[N, C, 28, 28]` or
    /// `[N, C, 32, 32]`; penultimate features `[N, 84]`. 61,706 parameters for 1x28x28 and
    /// 10 classes (62,006 for 3x32x32).
    public static func lenet(inChannels: Int = 1, inputSize: Int = 28, numClasses: Int = 10, seed: UInt64 = 0) -> Classifier {
        precondition(inputSize == 28 || inputSize == 32, "lenet: inputSize must be 28 or 32, got \(inputSize)")
        var rng = RandomStream(seed: seed, stream: [0x494E_4954])
        let layers: [any Layer] = [
            Conv2d(inChannels: inChannels, outChannels: 6, kernelSize: 5, padding: inputSize == 28 ? 2 : 0, rng: &rng),
            ReLU(),
            MaxPool2d(kernelSize: 2),
            Conv2d(inChannels: 6, outChannels: 16, kernelSize: 5, rng: &rng),
            ReLU(),
            MaxPool2d(kernelSize: 2),
            Flatten(),
            Linear(inFeatures: 16 * 5 * 5, outFeatures: 120, rng: &rng),
            ReLU(),
            Linear(inFeatures: 120, outFeatures: 84, rng: &rng),
            ReLU(),
        ]
        let features = Sequential(layers)
        features.recordedIndices = [1, 4]
        return Classifier(features: features, classifier: Linear(inFeatures: 84, outFeatures: numClasses, rng: &rng))
    }

    /// ResNet-20 for CIFAR (He et al. 2016, section 4.2; the common PyTorch definition with
    /// option-A shortcuts): conv3x3(3 -> 16) - BN - ReLU, three stages of three basic blocks
    /// (16, 32, 64 channels; stride 2 at the first block of stages 2 and 3), global average
    /// pooling, `linear` (64 -> numClasses). Option-A shortcut = subsample by 2 and zero-pad
    /// channels (no parameters). `x [N, 3, 32, 32] => [N, numClasses]`; penultimate `[N, 64]`.
    /// 269,722 parameters for 10 classes. Names: `conv1`, `bn1`, `layer1.0.conv1`, ...,
    /// `linear`. Conv and linear weights: kaiming_normal (fan_in, gain sqrt 2) as in that
    /// definition; linear bias PyTorch default. Recorded feature maps: outputs of layer1..3.
    public static func resnet20(inChannels: Int = 3, numClasses: Int = 10, seed: UInt64 = 0) -> Classifier {
        var rng = RandomStream(seed: seed, stream: [0x494E_4954])
        func conv(_ cin: Int, _ cout: Int, _ k: Int, _ s: Int, _ p: Int) -> Conv2d {
            let c = Conv2d(inChannels: cin, outChannels: cout, kernelSize: k, stride: s, padding: p, bias: false, rng: &rng)
            Initializers.kaimingNormal(c.weight, fanIn: cin * k * k, rng: &rng)
            return c
        }
        var named: [(String, any Layer)] = [("conv1", conv(inChannels, 16, 3, 1, 1)), ("bn1", BatchNorm2d(numFeatures: 16)),
                                            ("relu", ReLU())]
        var cin = 16
        for (stage, width) in [16, 32, 64].enumerated() {
            var blocks: [any Layer] = []
            for b in 0..<3 {
                let s = stage > 0 && b == 0 ? 2 : 1
                let body = Sequential(named: [
                    ("conv1", conv(cin, width, 3, s, 1)), ("bn1", BatchNorm2d(numFeatures: width)), ("relu", ReLU()),
                    ("conv2", conv(width, width, 3, 1, 1)), ("bn2", BatchNorm2d(numFeatures: width)),
                ])
                let shortcut: (any Layer)? = (s != 1 || cin != width) ? ChannelPadShortcut(outChannels: width, stride: s) : nil
                blocks.append(Residual(body: body, shortcut: shortcut))
                cin = width
            }
            named.append(("layer\(stage + 1)", Sequential(blocks)))
        }
        named.append(("avgpool", GlobalAvgPool2d()))
        let features = Sequential(named: named)
        features.recordedIndices = [3, 4, 5]
        let linear = Linear(inFeatures: 64, outFeatures: numClasses, rng: &rng)
        Initializers.kaimingNormal(linear.weight, fanIn: 64, rng: &rng)
        return Classifier(features: features, classifier: linear, featuresName: nil, classifierName: "linear")
    }

    /// DenseNet-BC (Huang et al. 2017) as in the OOD-detection reference code (`DenseNet3`):
    /// depth 100, growth 12, reduction 0.5, bottleneck blocks BN-ReLU-conv1x1(4k)-[dropout]-
    /// BN-ReLU-conv3x3(k)-[dropout] concatenated to their input, transitions BN-ReLU-conv1x1-
    /// [dropout]-avgpool2, then BN-ReLU-global average pooling (`avg_pool2d(8)` at 32x32) and
    /// `fc`. Channels 24 -> 216 -> 108 -> 300 -> 150 -> 342. For 10 classes: 745,174
    /// parameters with non-affine BN (the UM reference), 769,162 with affine BN.
    /// `x [N, 3, 32, 32] => [N, numClasses]`; penultimate `[N, 342]`.
    /// Names: `conv1`, `block1.layer.0.bn1`, `block1.layer.0.conv1`, `trans1.conv1`, ..., `bn1`,
    /// `fc`. Init as the reference: conv weights N(0, sqrt(2 / (k*k*outChannels))), fc bias 0.
    /// Dropout layers (p = `dropRate`, only if > 0) are numbered 0, 1, ... in forward order for
    /// their random keys; training with dropout needs `ForwardContext.sampleIDs`. Recorded
    /// feature maps: outputs of block1, block2 and the final ReLU.
    public static func densenetBC100(inChannels: Int = 3, numClasses: Int = 10, growthRate: Int = 12,
                                     reduction: Double = 0.5, dropRate: Float = 0, affineBatchNorm: Bool = false,
                                     seed: UInt64 = 0) -> Classifier {
        var rng = RandomStream(seed: seed, stream: [0x494E_4954])
        var dropoutIndex: UInt64 = 0
        func conv(_ cin: Int, _ cout: Int, _ k: Int, _ p: Int) -> Conv2d {
            let c = Conv2d(inChannels: cin, outChannels: cout, kernelSize: k, padding: p, bias: false, rng: &rng)
            Initializers.normal(c.weight, std: Float((2 / Double(k * k * cout)).squareRoot()), rng: &rng)
            return c
        }
        func dropout() -> [(String, any Layer)] {
            guard dropRate > 0 else { return [] }
            defer { dropoutIndex += 1 }
            return [("dropout\(dropoutIndex)", Dropout(p: dropRate, layerIndex: dropoutIndex))]
        }
        func bn(_ c: Int) -> BatchNorm2d { BatchNorm2d(numFeatures: c, affine: affineBatchNorm) }
        let perBlock = (100 - 4) / 6
        var planes = 2 * growthRate
        var named: [(String, any Layer)] = [("conv1", conv(inChannels, planes, 3, 1))]
        for stage in 1...3 {
            var layers: [any Layer] = []
            for _ in 0..<perBlock {
                let inter = 4 * growthRate
                var body: [(String, any Layer)] = [("bn1", bn(planes)), ("relu1", ReLU()), ("conv1", conv(planes, inter, 1, 0))]
                body += dropout()
                body += [("bn2", bn(inter)), ("relu2", ReLU()), ("conv2", conv(inter, growthRate, 3, 1))]
                body += dropout()
                layers.append(DenseConcat(body: Sequential(named: body)))
                planes += growthRate
            }
            named.append(("block\(stage)", Sequential(named: [("layer", Sequential(layers))])))
            if stage < 3 {
                let out = Int((Double(planes) * reduction).rounded(.down))
                var trans: [(String, any Layer)] = [("bn1", bn(planes)), ("relu", ReLU()), ("conv1", conv(planes, out, 1, 0))]
                trans += dropout()
                trans.append(("pool", AvgPool2d(kernelSize: 2)))
                named.append(("trans\(stage)", Sequential(named: trans)))
                planes = out
            }
        }
        named += [("bn1", bn(planes)), ("relu", ReLU()), ("avgpool", GlobalAvgPool2d())]
        let features = Sequential(named: named)
        features.recordedIndices = [1, 3, 7]
        let fc = Linear(inFeatures: planes, outFeatures: numClasses, rng: &rng)
        fc.bias?.value.zero()
        return Classifier(features: features, classifier: fc, featuresName: nil, classifierName: "fc")
    }

    /// WRN-40-2 and other WideResNets (Zagoruyko & Komodakis 2016) as in the OOD reference code
    /// (`WideResNet(depth, num_classes, widen_factor, dropRate)`): conv3x3(3 -> 16), three
    /// groups of `(depth - 4) / 6` pre-activation `WideBasicBlock`s with widths 16k, 32k, 64k
    /// (stride 1, 2, 2), then BN - ReLU - global average pooling - `fc`. For depth 40, k = 2,
    /// 10 classes: 2,243,546 parameters. `x [N, 3, 32, 32] => [N, numClasses]`; penultimate
    /// `[N, 64k]`. Names: `conv1`, `block1.layer.0.bn1`, ..., `block3.layer.5.conv2`, `bn1`,
    /// `fc`. Init as the reference: conv N(0, sqrt(2 / (k*k*outChannels))), fc bias 0.
    /// Dropout layers are numbered 0, 1, ... in block order for their random keys.
    public static func wideResNet(depth: Int = 40, widenFactor: Int = 2, inChannels: Int = 3, numClasses: Int = 10,
                                  dropRate: Float = 0.3, seed: UInt64 = 0) -> Classifier {
        precondition((depth - 4) % 6 == 0, "wideResNet: depth \(depth) must be 6n + 4")
        var rng = RandomStream(seed: seed, stream: [0x494E_4954])
        func reinit(_ c: Conv2d) {
            Initializers.normal(c.weight, std: Float((2 / Double(c.kernelSize.height * c.kernelSize.width * c.outChannels)).squareRoot()),
                                rng: &rng)
        }
        let conv1 = Conv2d(inChannels: inChannels, outChannels: 16, kernelSize: 3, padding: 1, bias: false, rng: &rng)
        reinit(conv1)
        var named: [(String, any Layer)] = [("conv1", conv1)]
        let n = (depth - 4) / 6
        var cin = 16
        var dropoutIndex: UInt64 = 0
        for (g, width) in [16 * widenFactor, 32 * widenFactor, 64 * widenFactor].enumerated() {
            var blocks: [any Layer] = []
            for b in 0..<n {
                let block = WideBasicBlock(inChannels: b == 0 ? cin : width, outChannels: width, stride: b == 0 && g > 0 ? 2 : 1,
                                           dropRate: dropRate, dropoutLayerIndex: dropoutIndex, rng: &rng)
                dropoutIndex += 1
                for c in [block.conv1, block.conv2] + (block.convShortcut.map { [$0] } ?? []) { reinit(c) }
                blocks.append(block)
            }
            cin = width
            named.append(("block\(g + 1)", Sequential(named: [("layer", Sequential(blocks))])))
        }
        named += [("bn1", BatchNorm2d(numFeatures: cin)), ("relu", ReLU()), ("avgpool", GlobalAvgPool2d())]
        let features = Sequential(named: named)
        features.recordedIndices = [1, 2, 5]
        let fc = Linear(inFeatures: cin, outFeatures: numClasses, rng: &rng)
        fc.bias?.value.zero()
        return Classifier(features: features, classifier: fc, featuresName: nil, classifierName: "fc")
    }

    /// WRN-40-2 (``wideResNet(depth:widenFactor:inChannels:numClasses:dropRate:seed:)`` with
    /// depth 40, widen factor 2): 2,243,546 parameters for 3x32x32 and 10 classes.
    public static func wrn40_2(inChannels: Int = 3, numClasses: Int = 10, dropRate: Float = 0.3, seed: UInt64 = 0) -> Classifier {
        wideResNet(depth: 40, widenFactor: 2, inChannels: inChannels, numClasses: numClasses, dropRate: dropRate, seed: seed)
    }

    /// DenseNet-BC-100 (k = 12) under the snake-case architecture name; see
    /// ``densenetBC100(inChannels:numClasses:growthRate:reduction:dropRate:affineBatchNorm:seed:)``.
    public static func densenet_bc100(inChannels: Int = 3, numClasses: Int = 10, dropRate: Float = 0,
                                      affineBatchNorm: Bool = false, seed: UInt64 = 0) -> Classifier {
        densenetBC100(inChannels: inChannels, numClasses: numClasses, dropRate: dropRate, affineBatchNorm: affineBatchNorm,
                      seed: seed)
    }

    /// ResNet-18 for CIFAR in the common layout of kuangliu/pytorch-cifar: conv3x3(C -> 64,
    /// stride 1) - BN - ReLU (no max-pool), four stages of two `BasicBlock`s (64, 128, 256,
    /// 512 channels; stride 2 at the first block of stages 2-4) with 1x1 projection shortcuts
    /// (conv1x1 stride s - BN) where the shape changes, global average pooling (`avg_pool2d(4)`
    /// at 32x32), `linear` (512 -> numClasses). `x [N, C, H, W] => [N, numClasses]`;
    /// penultimate `[N, 512]`. 11,173,962 parameters for 3x32x32 and 10 classes.
    /// Names: `conv1`, `bn1`, `layer1.0.conv1`, ..., `layer2.0.shortcut.0` (conv),
    /// `layer2.0.shortcut.1` (BN), `linear`. Init: PyTorch defaults (that definition does not
    /// re-initialise), drawn layer by layer. Recorded feature maps: outputs of layer1..4.
    public static func resnet18(inChannels: Int = 3, numClasses: Int = 10, seed: UInt64 = 0) -> Classifier {
        var rng = RandomStream(seed: seed, stream: [0x494E_4954])
        func conv(_ cin: Int, _ cout: Int, _ k: Int, _ s: Int, _ p: Int) -> Conv2d {
            Conv2d(inChannels: cin, outChannels: cout, kernelSize: k, stride: s, padding: p, bias: false, rng: &rng)
        }
        var named: [(String, any Layer)] = [("conv1", conv(inChannels, 64, 3, 1, 1)), ("bn1", BatchNorm2d(numFeatures: 64)),
                                            ("relu", ReLU())]
        var cin = 64
        for (stage, width) in [64, 128, 256, 512].enumerated() {
            var blocks: [any Layer] = []
            for b in 0..<2 {
                let s = stage > 0 && b == 0 ? 2 : 1
                let body = Sequential(named: [
                    ("conv1", conv(cin, width, 3, s, 1)), ("bn1", BatchNorm2d(numFeatures: width)), ("relu", ReLU()),
                    ("conv2", conv(width, width, 3, 1, 1)), ("bn2", BatchNorm2d(numFeatures: width)),
                ])
                let shortcut: (any Layer)? = (s != 1 || cin != width)
                    ? Sequential([conv(cin, width, 1, s, 0), BatchNorm2d(numFeatures: width)]) : nil
                blocks.append(Residual(body: body, shortcut: shortcut))
                cin = width
            }
            named.append(("layer\(stage + 1)", Sequential(blocks)))
        }
        named.append(("avgpool", GlobalAvgPool2d()))
        let features = Sequential(named: named)
        features.recordedIndices = [3, 4, 5, 6]
        let linear = Linear(inFeatures: 512, outFeatures: numClasses, rng: &rng)
        return Classifier(features: features, classifier: linear, featuresName: nil, classifierName: "linear")
    }

    /// ResNet-50 (He et al. 2016) with torchvision names and initialisation (`resnet50()`,
    /// v1.5: stride in the 3x3 conv): conv7x7(C -> 64, stride 2, padding 3) - `bn1` - ReLU -
    /// max-pool 3x3 stride 2 padding 1, `layer1..4` of [3, 4, 6, 3] `Bottleneck`s
    /// (conv1x1 - BN - ReLU - conv3x3 stride s - BN - ReLU - conv1x1 (4x) - BN, plus shortcut,
    /// then ReLU) with widths 64, 128, 256, 512 (outputs 256 ... 2048) and projection
    /// shortcuts `downsample.0` (conv1x1 stride s) / `downsample.1` (BN) where the shape
    /// changes, global average pooling, `fc` (2048 -> numClasses).
    /// `x [N, C, H, W] => [N, numClasses]`; penultimate `[N, 2048]`. 25,557,032 parameters for
    /// 3x224x224 and 1000 classes. Init as torchvision: conv weights kaiming_normal (fan_out,
    /// ReLU gain): N(0, sqrt(2 / (Cout * KH * KW))); BN weight 1, bias 0 (no zero-init of the
    /// last BN); `fc` PyTorch default. Recorded feature maps: outputs of layer1..4.
    public static func resnet50(inChannels: Int = 3, numClasses: Int = 1000, seed: UInt64 = 0) -> Classifier {
        var rng = RandomStream(seed: seed, stream: [0x494E_4954])
        func conv(_ cin: Int, _ cout: Int, _ k: Int, _ s: Int, _ p: Int) -> Conv2d {
            let c = Conv2d(inChannels: cin, outChannels: cout, kernelSize: k, stride: s, padding: p, bias: false, rng: &rng)
            Initializers.kaimingNormal(c.weight, fanIn: cout * k * k, rng: &rng)  // fan_out mode
            return c
        }
        var named: [(String, any Layer)] = [
            ("conv1", conv(inChannels, 64, 7, 2, 3)), ("bn1", BatchNorm2d(numFeatures: 64)), ("relu", ReLU()),
            ("maxpool", MaxPool2d(kernelSize: 3, stride: 2, padding: 1)),
        ]
        var cin = 64
        for (stage, (planes, count)) in zip([64, 128, 256, 512], [3, 4, 6, 3]).enumerated() {
            var blocks: [any Layer] = []
            let out = 4 * planes
            for b in 0..<count {
                let s = stage > 0 && b == 0 ? 2 : 1
                let body = Sequential(named: [
                    ("conv1", conv(cin, planes, 1, 1, 0)), ("bn1", BatchNorm2d(numFeatures: planes)), ("relu1", ReLU()),
                    ("conv2", conv(planes, planes, 3, s, 1)), ("bn2", BatchNorm2d(numFeatures: planes)), ("relu2", ReLU()),
                    ("conv3", conv(planes, out, 1, 1, 0)), ("bn3", BatchNorm2d(numFeatures: out)),
                ])
                let shortcut: (any Layer)? = (s != 1 || cin != out)
                    ? Sequential([conv(cin, out, 1, s, 0), BatchNorm2d(numFeatures: out)]) : nil
                blocks.append(Residual(body: body, shortcut: shortcut, shortcutName: "downsample"))
                cin = out
            }
            named.append(("layer\(stage + 1)", Sequential(blocks)))
        }
        named.append(("avgpool", GlobalAvgPool2d()))
        let features = Sequential(named: named)
        features.recordedIndices = [4, 5, 6, 7]
        let fc = Linear(inFeatures: 2048, outFeatures: numClasses, rng: &rng)
        return Classifier(features: features, classifier: fc, featuresName: nil, classifierName: "fc")
    }
}
