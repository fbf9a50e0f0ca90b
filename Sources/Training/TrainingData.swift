import Datasets
import Foundation
import TensorCore

/// The datasets of a run: the training set (after carving out the validation split and
/// taking the configured subset), the validation split, and the ID test set.
public struct TrainingData: Sendable {
    /// The full training file; `trainIds` and `validationIds` index into it by sample id.
    public let trainSet: ImageDataset
    /// Ids used for training (ascending).
    public let trainIds: [Int]
    /// Ids held out for calibration and detector tuning (ascending, disjoint from `trainIds`).
    public let validationIds: [Int]
    /// The ID test set (never used for tuning).
    public let testSet: ImageDataset
    public let normalizer: ChannelNormalizer
    /// Training-time augmentation (random crop with zero padding, horizontal flip), keyed by
    /// (seed, epoch, global sample id); nil when off.
    public var augmentation: Augmentation?

    public init(trainSet: ImageDataset, trainIds: [Int], validationIds: [Int], testSet: ImageDataset,
                normalizer: ChannelNormalizer, augmentation: Augmentation? = nil) {
        self.augmentation = augmentation
        self.trainSet = trainSet
        self.trainIds = trainIds
        self.validationIds = validationIds
        self.testSet = testSet
        self.normalizer = normalizer
    }

    /// Loads the data named by `config.data`.
    ///
    /// - Throws: `DatasetError` naming the file, or ``ConfigError`` for sizes that do not fit.
    public static func load(_ config: RunConfig, file: String) throws -> TrainingData {
        let d = config.data
        let train: ImageDataset
        let test: ImageDataset
        switch d.format {
        case "idx":
            for (key, path) in [("data.train_images", d.trainImages), ("data.train_labels", d.trainLabels),
                                ("data.test_images", d.testImages), ("data.test_labels", d.testLabels)]
                where !FileManager.default.fileExists(atPath: path) {
                let cwd = FileManager.default.currentDirectoryPath
                let whereText = path.hasPrefix("/") ? "" : " (relative paths are resolved from the current folder \(cwd))"
                throw ConfigError.invalidValue(file: file, key: key, expected: "an existing file", actual: "'\(path)' (missing)\(whereText)",
                                               hint: "run launch/prepare-data.sh in the repository, launch from the repository root, or point \(key) at your copy.")
            }
            let names = config.model.numClasses == 10 ? FashionMNIST.classNames : []
            train = try IDX.load(imagesPath: d.trainImages, labelsPath: d.trainLabels, classCount: config.model.numClasses,
                                 classNames: names)
            test = try IDX.load(imagesPath: d.testImages, labelsPath: d.testLabels, classCount: config.model.numClasses,
                                classNames: names)
        case "cifar10", "cifar100":
            guard FileManager.default.fileExists(atPath: d.trainImages) else {
                throw ConfigError.invalidValue(file: file, key: "data.train_images", expected: "the CIFAR binary folder",
                                               actual: "'\(d.trainImages)' (missing)", hint: d.format == "cifar10" ? "point it at the cifar-10-batches-bin folder." : "point it at the cifar-100-binary folder.")
            }
            if d.format == "cifar10" {
                train = try CIFAR10.load(directory: d.trainImages, split: .train)
                test = try CIFAR10.load(directory: d.trainImages, split: .test)
            } else {
                train = try CIFAR100.load(directory: d.trainImages, split: .train)
                test = try CIFAR100.load(directory: d.trainImages, split: .test)
            }
        case "folder":
            // Class-per-subfolder JPEG/PNG trees (torchvision ImageFolder layout), decoded eagerly
            // into memory, resized (shorter side) and centre-cropped to model.image_size.
            // data.train_images / data.test_images are the two roots.
            for (key, path) in [("data.train_images", d.trainImages), ("data.test_images", d.testImages)] {
                var isDir: ObjCBool = false
                if !FileManager.default.fileExists(atPath: path, isDirectory: &isDir) || !isDir.boolValue {
                    throw ConfigError.invalidValue(file: file, key: key, expected: "a folder with one sub-folder per class",
                                                   actual: "'\(path)'", hint: "point it at e.g. train/ and val/ of an ImageFolder tree.")
                }
            }
            let t = ResizeCenterCrop(resizeShorterSide: config.model.imageSize, cropSize: config.model.imageSize)
            train = try ImageFolder.load(root: d.trainImages, layout: .classFolders, channels: config.model.inChannels, transform: t).dataset
            test = try ImageFolder.load(root: d.testImages, layout: .classFolders, channels: config.model.inChannels, transform: t).dataset
            if train.classCount != config.model.numClasses {
                throw ConfigError.invalidValue(file: file, key: "model.num_classes", expected: "\(train.classCount) (class folders in \(d.trainImages))",
                                               actual: "\(config.model.numClasses)", hint: "set model.num_classes to the number of class folders.")
            }
        default:
            throw ConfigError.invalidValue(file: file, key: "data.format", expected: "idx, cifar10, cifar100 or folder",
                                           actual: "'\(d.format)'", hint: "Fashion-MNIST is idx.")
        }
        try check(train, config: config, file: file, key: "data.train_images")
        try check(test, config: config, file: file, key: "data.test_images")
        guard d.validationSize < train.count else {
            throw ConfigError.invalidValue(file: file, key: "data.validation_size", expected: "fewer than the \(train.count) training images",
                                           actual: "\(d.validationSize)", hint: "5000 of 60000 is typical.")
        }
        let split = train.validationSplit(validationSize: d.validationSize, seed: UInt64(d.validationSeed))
        var trainIds = split.trainIds
        if d.trainSubset > 0 {
            guard d.trainSubset <= trainIds.count else {
                throw ConfigError.invalidValue(file: file, key: "data.train_subset",
                                               expected: "at most the \(trainIds.count) images left after the validation split",
                                               actual: "\(d.trainSubset)", hint: "use 0 for all of them.")
            }
            trainIds = Array(trainIds.prefix(d.trainSubset))
        }
        let augmentation = d.randomCrop || d.horizontalFlip
            ? Augmentation(cropPadding: d.randomCrop ? d.padding : 0, horizontalFlip: d.horizontalFlip, seed: UInt64(config.seed))
            : nil
        return TrainingData(trainSet: train, trainIds: trainIds, validationIds: split.validationIds, testSet: test,
                            normalizer: ChannelNormalizer(mean: d.mean.map(Float.init), std: d.std.map(Float.init)),
                            augmentation: augmentation)
    }

    static func check(_ ds: ImageDataset, config: RunConfig, file: String, key: String) throws {
        if ds.channels != config.model.inChannels || ds.height != config.model.imageSize || ds.width != config.model.imageSize {
            throw ConfigError.invalidValue(
                file: file, key: "model.in_channels/model.image_size",
                expected: "the data's shape \(ds.channels)x\(ds.height)x\(ds.width) (from \(key))",
                actual: "\(config.model.inChannels)x\(config.model.imageSize)x\(config.model.imageSize)",
                hint: "set model.in_channels and model.image_size to match the data.")
        }
    }

    /// Normalised images `[positions.count, C, H, W]` and labels of `dataset` at `positions`.
    public func batch(_ dataset: ImageDataset, positions: [Int]) -> (images: Tensor, labels: [Int]) {
        var x = Tensor(zeros: [positions.count, dataset.channels, dataset.height, dataset.width])
        if !positions.isEmpty {
            x.withUnsafeMutableBufferPointer { dataset.normalizedBatch(positions: positions, normalizer: normalizer, into: $0) }
        }
        return (x, dataset.labels(at: positions))
    }
}
