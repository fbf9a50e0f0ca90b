/// `model:` the architecture and its input.
public struct ModelSection: Codable, Equatable, Sendable {
    /// Architecture (see `umtrain model-info`).
    public var arch = ModelArchitecture.cnn5
    /// Base width of `cnn5` (channels of its first layer).
    public var width = 32
    /// 1 (grayscale) or 3 (RGB).
    public var inChannels = 1
    /// Input height = width, in pixels.
    public var imageSize = 28
    public var numClasses = 10
    /// Dropout probability where the architecture has dropout.
    public var dropout = 0.0
    /// `affine` (gamma/beta) or `non_affine` BatchNorm.
    public var batchNorm = BatchNormKind.affine

    /// The ranges of this section's numeric keys (see ``ConfigRange``).
    static var ranges: [ConfigRange<ModelSection>] {
        [.int(\.width, "model.width", 1...4096, hint: "32 is cnn5's default"),
         .int(\.inChannels, "model.in_channels", 1...3, hint: "1 for grayscale, 3 for RGB"),
         .int(\.imageSize, "model.image_size", 8...4096, hint: "28 for Fashion-MNIST, 32 for CIFAR, 224 for ImageNet"),
         .int(\.numClasses, "model.num_classes", 2...1_000_000, hint: "10 for Fashion-MNIST/CIFAR-10"),
         .number(\.dropout, "model.dropout", 0, 1, upperOpen: true, hint: "0.3 in the UM reference")]
    }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case arch, width, dropout
        case inChannels = "in_channels", imageSize = "image_size", numClasses = "num_classes", batchNorm = "batch_norm"
    }

    /// Range checks of this section.
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` naming the key.
    public func validate(file: String) throws {
        for r in Self.ranges { try r.check(self, file: file) }
        if inChannels == 2 {
            throw ConfigError.invalidValue(file: file, key: "model.in_channels", expected: "1 or 3", actual: "2", hint: "1 for grayscale, 3 for RGB")
        }
    }
}

/// `data:` the in-distribution data, its split and augmentation.
public struct DataSection: Codable, Equatable, Sendable {
    /// `idx` (MNIST-style, raw or gzip), `cifar10`, `cifar100` (binary) or `folder`.
    public var format = DataFormat.idx
    /// Training images/labels (idx) or the dataset folder (cifar, folder).
    public var trainImages = "data/fashion-mnist/train-images-idx3-ubyte.gz"
    public var trainLabels = "data/fashion-mnist/train-labels-idx1-ubyte.gz"
    public var testImages = "data/fashion-mnist/t10k-images-idx3-ubyte.gz"
    public var testLabels = "data/fashion-mnist/t10k-labels-idx1-ubyte.gz"
    /// Use only the first N training images after the validation split is removed (0 = all).
    public var trainSubset = 0
    /// Images carved out of the training set for calibration and detector tuning.
    public var validationSize = 5000
    public var validationSeed = 0
    /// Per-channel normalisation of pixels in [0, 1].
    public var mean: [Double] = [0.2860]
    public var std: [Double] = [0.3530]
    /// Training augmentation (off by default for digit-like data).
    public var randomCrop = false
    public var padding = 4
    public var horizontalFlip = false
    /// ImageNet-style training crop for `folder` data loaded lazily: torchvision
    /// `RandomResizedCrop(image_size)` (area 8-100%, aspect 3/4-4/3) from the full decoded image,
    /// flipped when `horizontal_flip`.
    public var randomResizedCrop = false
    /// Folder images (training, test and OOD folder sets): shorter side in pixels before the
    /// centre crop to `model.image_size` (0 = image_size; torchvision's ImageNet evaluation: 256).
    public var resize = 0
    /// How folder sets are read: `auto` (in memory when the decoded set is at most 4 GiB, else
    /// lazily), `memory` (decode everything once) or `lazy` (decode each image when its batch is
    /// read, on a loader thread ahead of compute).
    public var loading = SampleSet.Loading.auto

    /// The ranges of this section's numeric keys (see ``ConfigRange``).
    static var ranges: [ConfigRange<DataSection>] {
        [.int(\.trainSubset, "data.train_subset", 0...1_000_000_000, hint: "0 uses the whole set"),
         .int(\.validationSize, "data.validation_size", 0...1_000_000_000, hint: "5000 is typical"),
         .int(\.validationSeed, "data.validation_seed", 0...Int(UInt32.max), hint: "any non-negative integer"),
         .numbers(\.mean, "data.mean", -100, 100, hint: "per-channel means of pixel values in [0, 1], e.g. [0.2860]"),
         .numbers(\.std, "data.std", 0, 100, lowerOpen: true, hint: "per-channel standard deviations of pixel values in [0, 1], e.g. [0.3530]"),
         .int(\.padding, "data.padding", 0...1024, hint: "the random crop's zero padding in pixels; 4 is the CIFAR recipe"),
         .int(\.resize, "data.resize", 0...16384, hint: "0 resizes straight to model.image_size; 256 with image_size 224 is torchvision's ImageNet evaluation")]
    }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case format, mean, std, padding, resize, loading
        case trainImages = "train_images", trainLabels = "train_labels", testImages = "test_images",
             testLabels = "test_labels", trainSubset = "train_subset", validationSize = "validation_size",
             validationSeed = "validation_seed", randomCrop = "random_crop", horizontalFlip = "horizontal_flip",
             randomResizedCrop = "random_resized_crop"
    }

    /// Whether any training augmentation is configured.
    public var augments: Bool { randomCrop || horizontalFlip || randomResizedCrop }

    /// Range checks of this section.
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` naming the key.
    public func validate(file: String) throws {
        let bad = ConfigError.invalid(file: file)
        if randomResizedCrop && format != .folder {
            throw bad("data.random_resized_crop", "false for data.format \(format)", true,
                      "it needs the full decoded images of a folder dataset; use data.random_crop for IDX/CIFAR")
        }
        if randomResizedCrop && loading == .memory {
            throw bad("data.random_resized_crop", "false with data.loading: memory", true,
                      "the crop is taken from the full decoded image, which only lazy loading keeps: use data.loading: lazy or auto")
        }
        if randomResizedCrop && randomCrop {
            throw bad("data.random_crop", "false when data.random_resized_crop is true", true, "choose one training crop")
        }
        for r in Self.ranges { try r.check(self, file: file) }
        if mean.isEmpty || std.isEmpty { throw bad("data.mean/data.std", "one value per input channel", "an empty list", "e.g. mean: [0.2860]") }
    }
}
