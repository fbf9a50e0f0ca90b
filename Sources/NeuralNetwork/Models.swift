import TensorCore

/// An image classifier: `features` (ending in a `[N, D]` penultimate representation) followed
/// by a linear `classifier`: `x [N, C, H, W] => logits [N, K]`.
///
/// Names: `features.<i>.<param>` (PyTorch `nn.Sequential` numbering) and `classifier.<param>`.
/// After each forward, `penultimateFeatures` holds the `[N, D]` input of the classifier and
/// `features.recordedOutputs` the feature maps at `features.recordedIndices`.
public final class Classifier: Layer {
    public let features: Sequential
    public let classifier: Linear
    public private(set) var penultimateFeatures: Tensor?

    public init(features: Sequential, classifier: Linear) {
        self.features = features
        self.classifier = classifier
        assignNames()
    }

    public var children: [(name: String, layer: any Layer)] {
        [("features", features), ("classifier", classifier)]
    }

    public func forward(_ x: Tensor, context: ForwardContext) -> Tensor {
        let f = features.forward(x, context: context)
        penultimateFeatures = f
        return classifier.forward(f, context: context)
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        features.backward(classifier.backward(gradOutput))
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
}
