import TensorCore

/// An image classification dataset held in memory as bytes.
///
/// Layout: `images` is `[count, channels, height, width]` row-major (NCHW, the PyTorch layout),
/// one `UInt8` per pixel (0...255, not normalised), so sample `i` occupies bytes
/// `i * sampleBytes ..< (i + 1) * sampleBytes`. Grayscale sets have `channels == 1`;
/// CIFAR is stored R plane, G plane, B plane.
///
/// `ids[i]` is the sample's stable global id: its 0-based index in the file the reader read
/// (for several files read as one set, e.g. CIFAR-10's five training batches, the index in their
/// concatenation in the documented file order). A subset keeps the ids of the set it came from,
/// so ids always refer back to the file. Ids are 64-bit `Int`s.
///
/// "Position" means an index into the arrays of this value (`0..<count`); for a set read from
/// file, position and id coincide.
public struct ImageDataset: Sendable {
    /// Pixels, `[count, channels, height, width]`, 0...255.
    public let images: [UInt8]
    /// Class index per sample, in `0..<classCount` (validated by the readers).
    public let labels: [Int]
    /// Stable global sample id per sample (see the type's documentation).
    public let ids: [Int]
    /// Class names, index = label; empty when the format does not provide them.
    public let classNames: [String]
    /// Number of classes (`classNames.count` when names are known).
    public let classCount: Int
    public let channels: Int
    public let height: Int
    public let width: Int

    /// Creates a dataset, checking that the arrays agree (programmer errors are preconditions).
    public init(images: [UInt8], labels: [Int], ids: [Int]? = nil, channels: Int, height: Int, width: Int,
                classCount: Int, classNames: [String] = []) {
        let count = labels.count
        precondition(channels > 0 && height > 0 && width > 0,
                     "ImageDataset: channels, height, width must be > 0, got [\(channels), \(height), \(width)]")
        precondition(images.count == count * channels * height * width,
                     "ImageDataset: images has \(images.count) bytes, expected [N=\(count), C=\(channels), H=\(height), W=\(width)] = \(count * channels * height * width)")
        precondition(ids == nil || ids!.count == count,
                     "ImageDataset: ids has \(ids!.count) entries, labels \(count)")
        precondition(classNames.isEmpty || classNames.count == classCount,
                     "ImageDataset: \(classNames.count) class names for classCount \(classCount)")
        self.images = images
        self.labels = labels
        self.ids = ids ?? Array(0..<count)
        self.channels = channels
        self.height = height
        self.width = width
        self.classCount = classCount
        self.classNames = classNames
    }

    /// Number of samples, N.
    public var count: Int { labels.count }
    /// Bytes per sample, C * H * W.
    public var sampleBytes: Int { channels * height * width }

    /// The pixels of the sample at `position`, `[C, H, W]`.
    public func image(at position: Int) -> ArraySlice<UInt8> {
        precondition(position >= 0 && position < count, "ImageDataset.image(at:): position \(position) not in 0..<\(count)")
        return images[position * sampleBytes ..< (position + 1) * sampleBytes]
    }

    /// Positions of the given global ids, in the order given.
    /// Precondition: every id is present in `ids`.
    public func positions(ofIds wanted: [Int]) -> [Int] {
        SampleIds.positions(of: wanted, in: ids, owner: "ImageDataset")
    }

    /// The samples with the given global ids, in the order given, keeping their ids, labels and
    /// the class names. Precondition: every id is present.
    public func subset(ids wanted: [Int]) -> ImageDataset {
        subset(positions: positions(ofIds: wanted))
    }

    /// The samples at the given positions, in the order given, keeping their ids.
    public func subset(positions: [Int]) -> ImageDataset {
        let bytes = sampleBytes
        var newImages = [UInt8](repeating: 0, count: positions.count * bytes)
        var newLabels = [Int]()
        var newIds = [Int]()
        newLabels.reserveCapacity(positions.count)
        newIds.reserveCapacity(positions.count)
        images.withUnsafeBufferPointer { src in
            newImages.withUnsafeMutableBufferPointer { dst in
                for (k, p) in positions.enumerated() {
                    precondition(p >= 0 && p < count, "ImageDataset.subset(positions:): position \(p) not in 0..<\(count)")
                    let from = UnsafeBufferPointer(rebasing: src[p * bytes ..< (p + 1) * bytes])
                    _ = UnsafeMutableBufferPointer(rebasing: dst[k * bytes ..< (k + 1) * bytes]).initialize(from: from)
                    newLabels.append(labels[p])
                    newIds.append(ids[p])
                }
            }
        }
        return ImageDataset(images: newImages, labels: newLabels, ids: newIds, channels: channels,
                            height: height, width: width, classCount: classCount, classNames: classNames)
    }

    /// Number of samples per class, `[classCount]`.
    public func labelHistogram() -> [Int] {
        var histogram = [Int](repeating: 0, count: classCount)
        for label in labels { histogram[label] += 1 }
        return histogram
    }

    /// Carves a validation split out of this set (see `ValidationSplit.make`).
    public func validationSplit(validationSize: Int, seed: UInt64) -> ValidationSplit {
        ValidationSplit.make(ids: ids, validationSize: validationSize, seed: seed)
    }
}

/// A deterministic partition of a set of sample ids into a training part and a validation part.
public struct ValidationSplit: Sendable, Equatable {
    /// Ids kept for training, ascending.
    public let trainIds: [Int]
    /// Ids held out for validation, ascending.
    public let validationIds: [Int]

    /// Shuffles the positions `0..<ids.count` with `Shuffle.permutation(count:seed:stream:)`
    /// (stream `0x76616C6964` = ASCII "valid", so it never coincides with a sampler epoch stream
    /// in practice) and puts the ids at the first `validationSize` shuffled positions in the
    /// validation part, the rest in the training part. Both parts are returned sorted ascending,
    /// are disjoint, and together hold every id exactly once. The result depends only on
    /// (ids, validationSize, seed): never on rank or world size.
    /// Precondition: `0 <= validationSize <= ids.count`, ids distinct.
    public static func make(ids: [Int], validationSize: Int, seed: UInt64) -> ValidationSplit {
        precondition(validationSize >= 0 && validationSize <= ids.count,
                     "ValidationSplit: validationSize \(validationSize) not in 0...\(ids.count) (dataset size)")
        precondition(Set(ids).count == ids.count, "ValidationSplit: ids are not distinct")
        let order = Shuffle.permutation(count: ids.count, seed: seed, stream: 0x76_61_6C_69_64)
        let validation = order[0..<validationSize].map { ids[$0] }.sorted()
        let train = order[validationSize...].map { ids[$0] }.sorted()
        return ValidationSplit(trainIds: train, validationIds: validation)
    }
}

/// Id-to-position lookup shared by the sample containers.
public enum SampleIds {
    /// The positions in `ids` of the `wanted` ids, in the order given: the identity when `ids` is
    /// `0..<ids.count` (no table built), else through a dictionary.
    /// Precondition: every wanted id is in `ids` (`owner` names the container in the message).
    public static func positions(of wanted: [Int], in ids: [Int], owner: String) -> [Int] {
        let count = ids.count
        if ids.elementsEqual(0..<count) {
            for id in wanted {
                precondition(id >= 0 && id < count, "\(owner).positions(ofIds:): id \(id) not in this set (ids 0..<\(count))")
            }
            return wanted
        }
        var index = [Int: Int](minimumCapacity: count)
        for (position, id) in ids.enumerated() { index[id] = position }
        return wanted.map { id in
            guard let p = index[id] else {
                preconditionFailure("\(owner).positions(ofIds:): id \(id) is not in this set of \(count) samples")
            }
            return p
        }
    }
}
