import Datasets
import Distributed
import Foundation
import TensorCore

/// A labelled image set that the stages read batches from: decoded in memory (`ImageDataset`:
/// IDX, CIFAR, small folders) or decoded lazily from files on every read (`LazyImageFolder`:
/// sets too large for memory, such as ImageNet-1k's 1.28M training images, about 190 GB as
/// 224x224x3 bytes).
///
/// Both kinds expose the same ids, labels and sample shape `[channels, height, width]`, and for
/// the same folder they yield the same bytes (decode, channel conversion, resize of the shorter
/// side, centre crop), so a run does not depend on how its data was loaded; only
/// `trainingCrop` (ImageNet-style random-resized-crop from the full image, lazy folders only)
/// has no in-memory counterpart.
///
/// "Position" is an index `0..<count` into the set; `ids[position]` is the stable global sample
/// id (the index of the file in the full scan, or in the file the reader read).
public struct SampleSet: Sendable {
    public enum Storage: Sendable {
        case memory(ImageDataset)
        case lazy(LazyImageFolder)
    }

    public let storage: Storage
    /// Stable global sample id per position.
    public let ids: [Int]
    /// Class index per position (0 for unlabeled OOD sets).
    public let labels: [Int]
    public let classCount: Int
    public let classNames: [String]
    public let channels: Int
    public let height: Int
    public let width: Int
    /// ImageNet-style training transform (torchvision `RandomResizedCrop(size)` +
    /// `RandomHorizontalFlip`), applied to the full decoded image by `trainingSource`; lazy
    /// folders only.
    public let trainingCrop: RandomResizedCrop?

    /// An in-memory set.
    public init(_ dataset: ImageDataset) {
        storage = .memory(dataset)
        ids = dataset.ids
        labels = dataset.labels
        classCount = dataset.classCount
        classNames = dataset.classNames
        channels = dataset.channels
        height = dataset.height
        width = dataset.width
        trainingCrop = nil
    }

    /// A lazily decoded folder (its evaluation transform gives the sample shape).
    /// - Precondition: `trainingCrop.size` equals the evaluation crop when given.
    public init(lazy folder: LazyImageFolder, trainingCrop: RandomResizedCrop? = nil) {
        if let trainingCrop {
            precondition(trainingCrop.size == folder.height && trainingCrop.size == folder.width,
                         "SampleSet: training crop \(trainingCrop.size) differs from the evaluation crop \(folder.height)x\(folder.width)")
        }
        storage = .lazy(LazyImageFolder(index: folder.index, channels: folder.channels, evaluation: folder.evaluation))
        ids = folder.index.ids
        labels = folder.index.labels
        classCount = folder.index.classCount
        classNames = folder.index.classNames
        channels = folder.channels
        height = folder.height
        width = folder.width
        self.trainingCrop = trainingCrop
    }

    public var count: Int { labels.count }
    /// Bytes per decoded sample, C * H * W.
    public var sampleBytes: Int { channels * height * width }
    public var isLazy: Bool { if case .lazy = storage { return true } else { return false } }
    /// The in-memory dataset (nil for a lazy folder).
    public var dataset: ImageDataset? { if case let .memory(d) = storage { return d } else { return nil } }

    /// E.g. "60000 images [1, 28, 28] in memory" or "1281167 images [3, 224, 224] decoded lazily".
    public var loadingDescription: String {
        "\(count) images [\(channels), \(height), \(width)] \(isLazy ? "decoded lazily (per batch, on a loader thread)" : "in memory")"
    }

    /// Positions of the given global ids, in the order given.
    /// Precondition: every id is in the set.
    public func positions(ofIds wanted: [Int]) -> [Int] {
        if case let .memory(d) = storage { return d.positions(ofIds: wanted) }
        return SampleIds.positions(of: wanted, in: ids, owner: "SampleSet")
    }

    /// `positions(ofIds:)` of each batch of ids, with one id lookup for all of them.
    public func positionBatches(_ idBatches: [[Int]]) -> [[Int]] {
        let flat = positions(ofIds: idBatches.flatMap { $0 })
        var out: [[Int]] = []
        out.reserveCapacity(idBatches.count)
        var start = 0
        for b in idBatches {
            out.append(Array(flat[start ..< start + b.count]))
            start += b.count
        }
        return out
    }

    /// The label of every id, as a dictionary (for gathering results by id).
    public func labelsById() -> [Int: Int] {
        Dictionary(uniqueKeysWithValues: zip(ids, labels))
    }

    /// The source for evaluation reads: no augmentation.
    public func evaluationSource() -> any BatchSource {
        switch storage {
        case let .memory(d): return InMemorySource(d)
        case let .lazy(f): return f
        }
    }

    /// The source for training reads: `trainingCrop` (lazy folders) and then `augmentation`
    /// (random crop with zero padding + flip on the `[C, H, W]` sample), each when set.
    public func trainingSource(augmentation: Augmentation?) -> any BatchSource {
        switch storage {
        case let .memory(d):
            return InMemorySource(d, augmentation: augmentation)
        case let .lazy(f):
            let base: any BatchSource = trainingCrop.map {
                LazyImageFolder(index: f.index, channels: f.channels, evaluation: f.evaluation, training: $0)
            } ?? f
            return augmentation.map { AugmentedSource(base, augmentation: $0) } ?? base
        }
    }

    /// How a folder set is loaded (`data.loading`, also used for OOD folder sets).
    public enum Loading: String, Sendable, CaseIterable {
        /// `memory` when the decoded set takes at most `autoMemoryLimitBytes`, else `lazy`.
        case auto
        /// Decode every image once, up front, into memory.
        case memory
        /// Decode each image when its batch is read (every epoch, every evaluation).
        case lazy
    }

    /// The decoded size above which `auto` loads lazily: 4 GiB per set.
    public static let autoMemoryLimitBytes = 4 << 30

    /// Whether a folder of `files` images of `sampleBytes` decoded bytes each loads lazily.
    public static func loadsLazily(_ loading: Loading, files: Int, sampleBytes: Int) -> Bool {
        switch loading {
        case .memory: return false
        case .lazy: return true
        case .auto: return files * sampleBytes > autoMemoryLimitBytes
        }
    }

    /// Reads a folder (class folders or flat) eagerly or lazily, as `loading` decides.
    ///
    /// With a communicator of several ranks the folder is scanned once, by rank 0, and the file
    /// list is broadcast (so 64 ranks do not list a shared file system 64 times), and the
    /// up-front file checks of a lazy read are split across the ranks (rank r checks files
    /// r, r + worldSize, ...) and their findings allgathered: every rank ends with the same
    /// index. Collective when `comm` is given.
    ///
    /// Lazy folders are checked up front: by file signature (first 8 bytes: catches empty, text
    /// and HTML files), or with `fullCheck` by decoding every file (what an eager read does; for
    /// sets of up to tens of thousands of files, such as OOD sets). Without `fullCheck` a file
    /// that passes but fails to decode stops the run when its batch is read, with an error
    /// naming the file.
    /// - Parameters:
    ///   - skipBadFiles: leave unreadable files out (reported in `skipped`) instead of failing.
    ///   - fullCheck: lazy reads decode every file up front (split across ranks), so skipping
    ///     and failing match the eager read exactly.
    /// - Returns: the set, the skipped files, and whether it was loaded lazily.
    /// - Throws: `ImageFileError.cannotList` / `.emptyFolder` from the scan; without
    ///   `skipBadFiles`, the first bad file's error (`DatasetError` / `ImageFileError`, or
    ///   `SampleSetError.badFile` for a file another rank checked); communicator errors.
    public static func folder(root: String, layout: FolderLayout, channels: Int, transform: ResizeCenterCrop,
                              loading: Loading, skipBadFiles: Bool, fullCheck: Bool = false,
                              trainingCrop: RandomResizedCrop? = nil, comm: Communicator? = nil) throws -> (set: SampleSet, skipped: [SkippedFile], lazy: Bool) {
        let shared = comm.flatMap { $0.worldSize > 1 ? $0 : nil }
        let scanned = try shared.map { try scanOnRoot(root: root, layout: layout, comm: $0) }
            ?? ImageFolderIndex.scan(root: root, layout: layout)
        let bytes = channels * transform.cropHeight * transform.cropWidth
        if loadsLazily(loading, files: scanned.count, sampleBytes: bytes) {
            let (index, skipped) = try verifySharded(scanned, skipBadFiles: skipBadFiles, fullDecode: fullCheck,
                                                     comm: shared ?? LocalCommunicator())
            let folder = LazyImageFolder(index: index, channels: channels, evaluation: transform)
            return (SampleSet(lazy: folder, trainingCrop: trainingCrop), skipped, true)
        }
        let loaded = try ImageFolder.load(index: scanned, channels: channels, transform: transform, skipBadFiles: skipBadFiles)
        return (SampleSet(loaded.dataset), loaded.skipped, false)
    }

    /// Rank 0 scans; the index (or rank 0's error) is broadcast. Collective.
    static func scanOnRoot(root: String, layout: FolderLayout, comm: Communicator) throws -> ImageFolderIndex {
        let previousPhase = comm.phase
        comm.phase = "start-up: rank 0 is scanning the image folder \(root) (raise --stall-timeout for very large folders on slow file systems)"
        defer { comm.phase = previousPhase }
        var payload: [UInt8] = []
        var failure: Error?
        if comm.rank == 0 {
            do { payload = [1] + (try ImageFolderIndex.scan(root: root, layout: layout)).serialized() } catch {
                failure = error
                payload = [0] + Array("\(error)".utf8)
            }
        }
        try comm.broadcastResizing(&payload, root: 0)
        if let failure { throw failure }
        guard payload.first == 1 else {
            throw SampleSetError.scanFailedOnRoot(root: root, message: String(decoding: payload.dropFirst(), as: UTF8.self))
        }
        return try ImageFolderIndex(serialized: Array(payload.dropFirst()))
    }

    /// Each rank checks (signature, or full decode) all of its share of the files, so one run
    /// reports every bad file; the bad positions and reasons
    /// are allgathered, so every rank drops (or fails on) the same files. Collective.
    static func verifySharded(_ index: ImageFolderIndex, skipBadFiles: Bool, fullDecode: Bool, comm: Communicator)
        throws -> (index: ImageFolderIndex, skipped: [SkippedFile]) {
        let previousPhase = comm.phase
        comm.phase = "start-up: checking the files of \(index.root) (split across ranks)"
        defer { comm.phase = previousPhase }
        var badPositions: [Int64] = []
        var reasons: [String] = []
        var localErrors: [Int: Error] = [:]
        var k = comm.rank
        while k < index.count {
            do {
                if fullDecode { _ = try ImageDecoder.decodeFile(index.paths[k]) } else { try ImageDecoder.checkSignature(index.paths[k]) }
            } catch {
                badPositions.append(Int64(k))
                reasons.append("\(error)")
                localErrors[k] = error
            }
            k += comm.worldSize
        }
        let allBad = try badPositions.withUnsafeBufferPointer { try comm.allgatherv($0) }.values.map { Int($0) }
        let text = Array(reasons.joined(separator: "\0").utf8) + (reasons.isEmpty ? [] : [0])
        let allText = try text.withUnsafeBufferPointer { try comm.allgatherv($0) }.values
        let allReasons = allText.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: Array($0), as: UTF8.self) }
        let reasonOf = Dictionary(zip(allBad, allReasons), uniquingKeysWith: { a, _ in a })
        let bad = Set(allBad)
        if !bad.isEmpty && !skipBadFiles {
            let first = bad.min()!
            guard bad.count == 1 else {
                let listed = bad.sorted().prefix(5).map { reasonOf[$0] ?? index.paths[$0] }
                throw SampleSetError.badFiles(root: index.root, count: bad.count, first: listed)
            }
            if let mine = localErrors[first] { throw mine }
            throw SampleSetError.badFile(path: index.paths[first], reason: reasonOf[first] ?? "unreadable")
        }
        let keep = (0..<index.count).filter { !bad.contains($0) }
        guard !keep.isEmpty else {
            throw ImageFileError.emptyFolder(path: index.root, detail: "all \(index.count) image files were skipped as unreadable; first: \(reasonOf[allBad.min() ?? 0] ?? "-")")
        }
        let skipped = bad.sorted().map { SkippedFile(path: index.paths[$0], reason: reasonOf[$0] ?? "unreadable") }
        return (index.subset(positions: keep), skipped)
    }
}

/// Errors of distributed folder reads.
public enum SampleSetError: Error, CustomStringConvertible {
    /// Rank 0 could not scan the folder (its error message is carried to every rank).
    case scanFailedOnRoot(root: String, message: String)
    /// A file that another rank checked is unreadable (`reason` is that rank's error message,
    /// which names the file).
    case badFile(path: String, reason: String)
    /// Several unreadable files (all are found in one pass; the first few are listed).
    case badFiles(root: String, count: Int, first: [String])

    public var description: String {
        switch self {
        case let .scanFailedOnRoot(root, message):
            return "\(root): rank 0 could not scan the image folder: \(message)"
        case let .badFiles(root, count, first):
            return "\(root): \(count) unreadable image files; the first \(first.count):\n  " + first.joined(separator: "\n  ")
                + "\nHint: delete or replace them (every bad file is found in one pass, so one clean-up is enough)."
        case let .badFile(path, reason):
            return reason.contains(path) ? reason + " (found by another rank's file check)"
                : "\(path): unreadable image: \(reason). Hint: delete or replace the file."
        }
    }
}
