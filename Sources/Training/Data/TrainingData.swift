import Datasets
import Distributed
import Foundation
import TensorCore

/// The datasets of a run: the training set (after carving out the validation split and
/// taking the configured subset), the validation split, and the ID test set.
public struct TrainingData: Sendable {
    /// The full training file (in memory or a lazily decoded folder); `trainIds` and
    /// `validationIds` index into it by sample id.
    public let trainSet: SampleSet
    /// Ids used for training (ascending).
    public let trainIds: [Int]
    /// Ids held out for calibration and detector tuning (ascending, disjoint from `trainIds`).
    public let validationIds: [Int]
    /// The ID test set (never used for tuning).
    public let testSet: SampleSet
    public let normalizer: ChannelNormalizer
    /// Training-time augmentation (random crop with zero padding, horizontal flip), keyed by
    /// (seed, epoch, global sample id); nil when off.
    public var augmentation: Augmentation?

    /// In-memory sets (convenience).
    public init(trainSet: ImageDataset, trainIds: [Int], validationIds: [Int], testSet: ImageDataset,
                normalizer: ChannelNormalizer, augmentation: Augmentation? = nil) {
        self.init(trainSet: SampleSet(trainSet), trainIds: trainIds, validationIds: validationIds, testSet: SampleSet(testSet),
                  normalizer: normalizer, augmentation: augmentation)
    }

    public init(trainSet: SampleSet, trainIds: [Int], validationIds: [Int], testSet: SampleSet,
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
    /// - Parameter comm: with several ranks, folder datasets are scanned by rank 0 only and their
    ///   file checks split across ranks (collective; see `SampleSet.folder`). Every rank must
    ///   call `load` with the same config.
    /// - Throws: `DatasetError` naming the file, or ``ConfigError`` for sizes that do not fit.
    public static func load(_ config: RunConfig, file: String, comm: Communicator? = nil) throws -> TrainingData {
        let d = config.data
        let train: SampleSet
        let test: SampleSet
        switch d.format {
        case .idx:
            for (key, path) in [("data.train_images", d.trainImages), ("data.train_labels", d.trainLabels),
                                ("data.test_images", d.testImages), ("data.test_labels", d.testLabels)]
                where !FileManager.default.fileExists(atPath: path) {
                let cwd = FileManager.default.currentDirectoryPath
                let whereText = path.hasPrefix("/") ? "" : " (relative paths are resolved from the current folder \(cwd))"
                throw ConfigError.invalidValue(file: file, key: key, expected: "an existing file", actual: "'\(path)' (missing)\(whereText)",
                                               hint: "run launch/prepare-data.sh in the repository, launch from the repository root, or point \(key) at your copy.")
            }
            let names = config.model.numClasses == 10 ? FashionMNIST.classNames : []
            do {
                train = SampleSet(try IDX.load(imagesPath: d.trainImages, labelsPath: d.trainLabels, classCount: config.model.numClasses,
                                               classNames: names))
                test = SampleSet(try IDX.load(imagesPath: d.testImages, labelsPath: d.testLabels, classCount: config.model.numClasses,
                                              classNames: names))
            } catch let DatasetError.labelOutOfRange(path, record, _, label, _) {
                throw numClassesError(config, file: file, label: label, at: "record \(record) of \(path)")
            }
        case .cifar10, .cifar100:
            guard FileManager.default.fileExists(atPath: d.trainImages) else {
                throw ConfigError.invalidValue(file: file, key: "data.train_images", expected: "the CIFAR binary folder",
                                               actual: "'\(d.trainImages)' (missing)", hint: d.format == .cifar10 ? "point it at the cifar-10-batches-bin folder." : "point it at the cifar-100-binary folder.")
            }
            if d.format == .cifar10 {
                train = SampleSet(try CIFAR10.load(directory: d.trainImages, split: .train))
                test = SampleSet(try CIFAR10.load(directory: d.trainImages, split: .test))
            } else {
                train = SampleSet(try CIFAR100.load(directory: d.trainImages, split: .train))
                test = SampleSet(try CIFAR100.load(directory: d.trainImages, split: .test))
            }
        case .folder:
            // Class-per-subfolder JPEG/PNG trees (torchvision ImageFolder layout): decoded,
            // resized (shorter side to data.resize, default model.image_size) and centre-cropped
            // to model.image_size; in memory or lazily per data.loading.
            // data.train_images / data.test_images are the two roots.
            for (key, path) in [("data.train_images", d.trainImages), ("data.test_images", d.testImages)] {
                var isDir: ObjCBool = false
                if !FileManager.default.fileExists(atPath: path, isDirectory: &isDir) || !isDir.boolValue {
                    throw ConfigError.invalidValue(file: file, key: key, expected: "a folder with one sub-folder per class",
                                                   actual: "'\(path)'", hint: "point it at e.g. train/ and val/ of an ImageFolder tree.")
                }
            }
            let size = config.model.imageSize
            let t = ResizeCenterCrop(resizeShorterSide: d.resize > 0 ? d.resize : size, cropSize: size)
            // random_resized_crop needs the full images, so `auto` means lazy with it.
            let loading = d.randomResizedCrop && d.loading == .auto ? .lazy : d.loading
            let crop = d.randomResizedCrop
                ? RandomResizedCrop(size: size, horizontalFlip: d.horizontalFlip, seed: UInt64(config.seed)) : nil
            let trainRead = try SampleSet.folder(root: d.trainImages, layout: .classFolders, channels: config.model.inChannels,
                                                 transform: t, loading: loading, skipBadFiles: false, trainingCrop: crop,
                                                 comm: comm)
            if d.randomResizedCrop && !trainRead.lazy {
                throw ConfigError.invalidValue(file: file, key: "data.random_resized_crop", expected: "lazy loading (data.loading: lazy)",
                                               actual: "true with the training folder loaded into memory (data.loading: \(d.loading))",
                                               hint: "set data.loading: lazy (the crop is taken from the full decoded image), or use data.random_crop.")
            }
            train = trainRead.set
            test = try SampleSet.folder(root: d.testImages, layout: .classFolders, channels: config.model.inChannels,
                                        transform: t, loading: loading, skipBadFiles: false, comm: comm).set
            if test.classNames != train.classNames {
                let missing = train.classNames.filter { !test.classNames.contains($0) }
                let extra = test.classNames.filter { !train.classNames.contains($0) }
                let detail = (missing.isEmpty ? "" : "missing \(missing.prefix(5).joined(separator: ", "))\(missing.count > 5 ? ", ..." : "")")
                    + (extra.isEmpty ? "" : (missing.isEmpty ? "" : "; ") + "extra \(extra.prefix(5).joined(separator: ", "))\(extra.count > 5 ? ", ..." : ""))")
                throw ConfigError.invalidValue(file: file, key: "data.test_images",
                                               expected: "the same \(train.classNames.count) class folders as data.train_images",
                                               actual: "\(test.classNames.count) class folders in '\(d.testImages)' (\(detail))",
                                               hint: "a class's label is its index among the sorted class folder names, so both roots need the same class folders (an empty class folder is not allowed; keep at least one image per class).")
            }
            if train.classCount != config.model.numClasses {
                throw ConfigError.invalidValue(file: file, key: "model.num_classes", expected: "\(train.classCount) (class folders in \(d.trainImages))",
                                               actual: "\(config.model.numClasses)", hint: "set model.num_classes to the number of class folders.")
            }
        }
        try check(train, config: config, file: file, key: "data.train_images")
        try check(test, config: config, file: file, key: "data.test_images")
        guard d.validationSize < train.count else {
            throw ConfigError.invalidValue(file: file, key: "data.validation_size", expected: "fewer than the \(train.count) training images",
                                           actual: "\(d.validationSize)", hint: "5000 of 60000 is typical.")
        }
        let split = ValidationSplit.make(ids: train.ids, validationSize: d.validationSize, seed: UInt64(d.validationSeed))
        var trainIds = split.trainIds
        if d.trainSubset > 0 {
            guard d.trainSubset <= trainIds.count else {
                throw ConfigError.invalidValue(file: file, key: "data.train_subset",
                                               expected: "at most the \(trainIds.count) images left after the validation split",
                                               actual: "\(d.trainSubset)", hint: "use 0 for all of them.")
            }
            if d.format == .folder {
                // Folder ids run class by class, so the first N would be the first classes only:
                // take a seeded random N instead (stream "sub"), kept in ascending id order.
                let order = Shuffle.permutation(count: trainIds.count, seed: UInt64(d.validationSeed), stream: 0x73_75_62)
                trainIds = order.prefix(d.trainSubset).map { trainIds[$0] }.sorted()
            } else {
                // IDX and CIFAR files are already in random class order.
                trainIds = Array(trainIds.prefix(d.trainSubset))
            }
        }
        // With random_resized_crop the flip is part of that transform.
        let augmentation = d.randomCrop || (d.horizontalFlip && !d.randomResizedCrop)
            ? Augmentation(cropPadding: d.randomCrop ? d.padding : 0, horizontalFlip: d.horizontalFlip, seed: UInt64(config.seed))
            : nil
        return TrainingData(trainSet: train, trainIds: trainIds, validationIds: split.validationIds, testSet: test,
                            normalizer: ChannelNormalizer(mean: d.mean.map(Float.init), std: d.std.map(Float.init)),
                            augmentation: augmentation)
    }

    /// `model.num_classes` is too small for a label of the data: the key is what to fix.
    static func numClassesError(_ config: RunConfig, file: String, label: Int, at place: String) -> ConfigError {
        .invalidValue(file: file, key: "model.num_classes", expected: "more than every label of the data (label \(label) at \(place))",
                      actual: "\(config.model.numClasses)",
                      hint: "set model.num_classes to the number of classes (10 for Fashion-MNIST and CIFAR-10, 100 for CIFAR-100).")
    }

    static func check(_ ds: SampleSet, config: RunConfig, file: String, key: String) throws {
        if let (index, label) = ds.labels.enumerated().max(by: { $0.element < $1.element }), label >= config.model.numClasses {
            throw numClassesError(config, file: file, label: label, at: "sample \(index) of \(key)")
        }
        if ds.channels != config.model.inChannels || ds.height != config.model.imageSize || ds.width != config.model.imageSize {
            throw ConfigError.invalidValue(
                file: file, key: "model.in_channels/model.image_size",
                expected: "the data's shape \(ds.channels)x\(ds.height)x\(ds.width) (from \(key))",
                actual: "\(config.model.inChannels)x\(config.model.imageSize)x\(config.model.imageSize)",
                hint: "set model.in_channels and model.image_size to match the data.")
        }
    }

    /// A 64-bit FNV-1a digest (16 hex digits) of what defines the training data: the training
    /// file's ids and labels, the training and held-out id lists, and, for a lazily read folder,
    /// the file paths. Saved with every checkpoint; resuming on other data is refused. (Pixel
    /// contents are not hashed: a file replaced in place under the same name goes unnoticed.)
    public func fingerprint() -> String {
        var h = FNV1a64()
        func word(_ v: Int) { h.add(word: UInt64(bitPattern: Int64(v))) }
        word(trainSet.count)
        for (id, label) in zip(trainSet.ids, trainSet.labels) { word(id); word(label) }
        word(trainIds.count)
        trainIds.forEach(word)
        word(validationIds.count)
        validationIds.forEach(word)
        if case let .lazy(folder) = trainSet.storage {
            for path in folder.index.paths { h.add(bytes: path.utf8); h.add(byte: 0) }
        }
        return h.hex
    }

    /// Normalised images `[positions.count, C, H, W]` and labels of `set` at `positions`
    /// (no augmentation).
    /// - Throws: decoding errors of a lazy folder (naming the file).
    public func batch(_ set: SampleSet, positions: [Int]) throws -> (images: Tensor, labels: [Int]) {
        if case let .memory(dataset) = set.storage {
            var x = Tensor(zeros: [positions.count, dataset.channels, dataset.height, dataset.width])
            if !positions.isEmpty {
                x.withUnsafeMutableBufferPointer { dataset.normalizedBatch(positions: positions, normalizer: normalizer, into: $0) }
            }
            return (x, dataset.labels(at: positions))
        }
        let loaded = try BatchLoader.assemble(BatchPlan(epoch: 0, step: 0, positions: positions), source: set.evaluationSource(),
                                              normalizer: normalizer)
        return (Tensor(shape: [loaded.count, loaded.channels, loaded.height, loaded.width], values: loaded.images), loaded.labels)
    }

    /// Runs `body(k, images, labels)` for each batch `k` of `batches` (positions into `set`), in
    /// order. Without `augmentedEpoch` the images are not augmented; with it they are the
    /// training view of that epoch (`set.trainingSource(augmentation: self.augmentation)`, draws
    /// keyed by (seed, epoch, id)). A lazy folder (or an augmented read) is assembled on a loader
    /// thread a few batches ahead of `body` (`BatchLoader`), so decoding overlaps compute;
    /// plain in-memory reads are synchronous.
    /// - Throws: `body`'s errors, and decoding errors of a lazy folder (naming the file).
    public func forEachBatch(_ set: SampleSet, _ batches: [[Int]], augmentedEpoch: Int? = nil,
                             _ body: (_ k: Int, _ images: Tensor, _ labels: [Int]) throws -> Void) throws {
        guard set.isLazy || augmentedEpoch != nil else {
            for (k, positions) in batches.enumerated() {
                let (x, labels) = try batch(set, positions: positions)
                try body(k, x, labels)
            }
            return
        }
        let source = augmentedEpoch == nil ? set.evaluationSource() : set.trainingSource(augmentation: augmentation)
        let plans = batches.enumerated().map { BatchPlan(epoch: augmentedEpoch ?? 0, step: $0.offset, positions: $0.element) }
        let loader = BatchLoader(source: source, plans: plans, normalizer: normalizer, prefetch: 3)
        defer { loader.cancel() }
        var k = 0
        while let loaded = try loader.next() {
            try body(k, Tensor(shape: [loaded.count, loaded.channels, loaded.height, loaded.width], values: loaded.images), loaded.labels)
            k += 1
        }
    }
}
