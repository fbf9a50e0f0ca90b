import Foundation

/// How an image folder is organised.
public enum FolderLayout: String, Sendable, CaseIterable {
    /// `ROOT/CLASS/.../IMAGE` (torchvision's `ImageFolder`): each sub-folder of the root is a
    /// class; classes are the sub-folder names sorted by code point, label = index in that order.
    /// Files directly in the root are ignored, as torchvision does.
    case classFolders = "class-folders"
    /// `ROOT/.../IMAGE`, unlabeled (an OOD set): every image gets label 0 and the set has
    /// `classCount` 1 (so `ImageDataset`'s label invariants hold; the label carries no meaning).
    case flat
}

/// One file skipped by a reader run with `skipBadFiles`, and why.
public struct SkippedFile: Sendable, Equatable, CustomStringConvertible {
    public let path: String
    /// The error's description.
    public let reason: String
    public var description: String { reason }

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
}

/// The file list of an image folder, scanned once without decoding anything.
///
/// Files: names ending in `.jpg`, `.jpeg` or `.png` (any case), found recursively (symbolic links
/// followed); names starting with "." are ignored (e.g. macOS `._x.jpg` resource files); other
/// files are ignored (as torchvision's extension filter does). The order is that of torchvision's
/// `make_dataset`: classes in sorted order; within a class (or the flat root), directories in
/// sorted path order (`sorted(os.walk(...))`) and files sorted by name within each directory.
/// Sorting is by Unicode code point (UTF-8 byte order), locale-independent. The 0-based index in
/// this order is the file's stable global sample id (`ids`; a `verified` index that dropped bad
/// files keeps the ids of the files it kept).
public struct ImageFolderIndex: Sendable, Equatable {
    public let root: String
    public let layout: FolderLayout
    /// Full paths, in id order.
    public let paths: [String]
    /// Label per file (`0..<classNames.count` for class folders; 0 for flat).
    public let labels: [Int]
    /// Class names (sorted sub-folder names) for class folders; empty for flat.
    public let classNames: [String]
    /// Stable global sample id per file: its index in the full scan.
    public let ids: [Int]

    init(root: String, layout: FolderLayout, paths: [String], labels: [Int], classNames: [String], ids: [Int]? = nil) {
        self.root = root
        self.layout = layout
        self.paths = paths
        self.labels = labels
        self.classNames = classNames
        self.ids = ids ?? Array(0..<paths.count)
    }

    /// Number of classes (1 for a flat folder).
    public var classCount: Int { layout == .flat ? 1 : classNames.count }
    public var count: Int { paths.count }

    /// The first `count` files (ids unchanged), e.g. for a quick benchmark or a smoke test.
    public func prefix(_ count: Int) -> ImageFolderIndex {
        precondition(count >= 1 && count <= paths.count, "ImageFolderIndex.prefix: count \(count) not in 1...\(paths.count)")
        return ImageFolderIndex(root: root, layout: layout, paths: Array(paths.prefix(count)),
                                labels: Array(labels.prefix(count)), classNames: classNames, ids: Array(ids.prefix(count)))
    }

    /// The files at `positions` (in the order given; ids unchanged).
    /// - Precondition: every position is in `0..<count`.
    public func subset(positions: [Int]) -> ImageFolderIndex {
        for p in positions { precondition(p >= 0 && p < count, "ImageFolderIndex.subset: position \(p) not in 0..<\(count)") }
        return ImageFolderIndex(root: root, layout: layout, paths: positions.map { paths[$0] }, labels: positions.map { labels[$0] },
                                classNames: classNames, ids: positions.map { ids[$0] })
    }

    /// The index as bytes (for sending it to other ranks): UTF-8 text, fields separated by NUL
    /// (`root`, layout, class count, the class names, file count, then path, label, id per
    /// file). Paths cannot contain NUL on POSIX file systems.
    public func serialized() -> [UInt8] {
        var fields: [String] = [root, layout.rawValue, String(classNames.count)]
        fields += classNames
        fields.append(String(paths.count))
        fields.reserveCapacity(fields.count + 3 * paths.count)
        for k in 0..<paths.count {
            fields.append(paths[k])
            fields.append(String(labels[k]))
            fields.append(String(ids[k]))
        }
        return Array(fields.joined(separator: "\0").utf8)
    }

    /// Reads what `serialized()` wrote.
    /// - Throws: `ImageFileError.cannotList` if the bytes are not a serialized index.
    public init(serialized bytes: [UInt8]) throws {
        let fields = bytes.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        func bad() -> ImageFileError { .cannotList(path: fields.first ?? "?", reason: "the folder index received from rank 0 is malformed (\(bytes.count) bytes)") }
        guard fields.count >= 4, let layout = FolderLayout(rawValue: fields[1]), let classCount = Int(fields[2]),
              fields.count >= 4 + classCount, let n = Int(fields[3 + classCount]), fields.count == 4 + classCount + 3 * n else { throw bad() }
        var paths: [String] = [], labels: [Int] = [], ids: [Int] = []
        paths.reserveCapacity(n); labels.reserveCapacity(n); ids.reserveCapacity(n)
        var i = 4 + classCount
        for _ in 0..<n {
            guard let label = Int(fields[i + 1]), let id = Int(fields[i + 2]) else { throw bad() }
            paths.append(fields[i]); labels.append(label); ids.append(id)
            i += 3
        }
        self.init(root: fields[0], layout: layout, paths: paths, labels: labels, classNames: Array(fields[3 ..< 3 + classCount]), ids: ids)
    }

    /// Checks every file before a lazy run, so a bad file fails (or is skipped) up front rather
    /// than mid-epoch. `fullDecode: false` reads only each file's first 8 bytes (the signature:
    /// catches text/HTML files and empty files, not truncated images); `true` decodes every file
    /// (catches everything the decoder would, at decoding cost: ImageNet-1k takes minutes).
    /// - Returns: the index of the good files (their ids unchanged) and the skipped files.
    /// - Throws: without `skipBadFiles`, the first bad file's error (`DatasetError.cannotRead`,
    ///   `ImageFileError.notAnImage`, `.corruptImage`, `.unsupportedImage`); with it,
    ///   `ImageFileError.emptyFolder` if no file is good.
    public func verified(skipBadFiles: Bool, fullDecode: Bool) throws -> (index: ImageFolderIndex, skipped: [SkippedFile]) {
        var keep: [Int] = []
        var skipped: [SkippedFile] = []
        for (k, path) in paths.enumerated() {
            do {
                if fullDecode {
                    _ = try ImageDecoder.decodeFile(path)
                } else {
                    try ImageDecoder.checkSignature(path)
                }
                keep.append(k)
            } catch {
                guard skipBadFiles else { throw error }
                skipped.append(SkippedFile(path: path, reason: "\(error)"))
            }
        }
        guard !keep.isEmpty else {
            throw ImageFileError.emptyFolder(path: root, detail: "all \(count) image files were skipped as unreadable; first: \(skipped.first?.reason ?? "-")")
        }
        let index = ImageFolderIndex(root: root, layout: layout, paths: keep.map { paths[$0] }, labels: keep.map { labels[$0] },
                                     classNames: classNames, ids: keep.map { ids[$0] })
        return (index, skipped)
    }

    /// File extensions the reader accepts (compared lower-cased).
    public static let extensions: Set<String> = ["jpg", "jpeg", "png"]

    /// Scans `root`.
    /// - Throws: `ImageFileError.cannotList` (root missing, not a directory, unreadable),
    ///   `.emptyFolder` (no image file; for class folders also when there is no class
    ///   sub-folder, or a class sub-folder holds no image, naming it, as torchvision refuses).
    public static func scan(root: String, layout: FolderLayout) throws -> ImageFolderIndex {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: root, isDirectory: &isDirectory) else {
            throw ImageFileError.cannotList(path: root, reason: "no such file or directory")
        }
        guard isDirectory.boolValue else {
            throw ImageFileError.cannotList(path: root, reason: "not a directory")
        }
        switch layout {
        case .flat:
            let paths = try imageFiles(under: root)
            guard !paths.isEmpty else {
                throw ImageFileError.emptyFolder(path: root, detail: "searched the folder and its sub-folders")
            }
            return ImageFolderIndex(root: root, layout: .flat, paths: paths,
                                    labels: [Int](repeating: 0, count: paths.count), classNames: [])
        case .classFolders:
            let entries = try listing(root).filter { isDir(join(root, $0)) }
            guard !entries.isEmpty else {
                throw ImageFileError.emptyFolder(path: root, detail: "no class sub-folders (layout class-folders expects ROOT/CLASS/IMAGE; use the flat layout for unlabeled sets)")
            }
            var paths: [String] = []
            var labels: [Int] = []
            for (label, name) in entries.enumerated() {
                let files = try imageFiles(under: join(root, name))
                guard !files.isEmpty else {
                    throw ImageFileError.emptyFolder(path: join(root, name), detail: "class '\(name)' (label \(label)) has no image file")
                }
                paths += files
                labels += [Int](repeating: label, count: files.count)
            }
            return ImageFolderIndex(root: root, layout: .classFolders, paths: paths, labels: labels, classNames: entries)
        }
    }

    static func join(_ a: String, _ b: String) -> String { a.hasSuffix("/") ? a + b : a + "/" + b }

    static func isDir(_ path: String) -> Bool {
        var d: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &d) && d.boolValue
    }

    static func codePointLess(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// Non-hidden entry names of a directory, sorted by code point.
    static func listing(_ dir: String) throws -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: dir)
                .filter { !$0.hasPrefix(".") }
                .sorted(by: codePointLess)
        } catch {
            throw ImageFileError.cannotList(path: dir, reason: "\(error.localizedDescription)")
        }
    }

    static func isImageName(_ name: String) -> Bool {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return false }
        return extensions.contains(name[name.index(after: dot)...].lowercased())
    }

    /// Image files under `dir`, in `sorted(os.walk(dir))` order.
    static func imageFiles(under dir: String) throws -> [String] {
        var directories: [(path: String, files: [String])] = []
        var pending = [dir]
        var visited = Set<String>()
        while let current = pending.popLast() {
            // Guard against symbolic-link cycles.
            let resolved = (current as NSString).resolvingSymlinksInPath
            if visited.contains(resolved) { continue }
            visited.insert(resolved)
            var files: [String] = []
            for name in try listing(current) {
                let path = join(current, name)
                if isDir(path) {
                    pending.append(path)
                } else if isImageName(name) {
                    files.append(path)
                }
            }
            directories.append((current, files))
        }
        directories.sort { codePointLess($0.path, $1.path) }
        return directories.flatMap { $0.files }
    }
}

/// Reads image folders (class-per-subfolder or flat) of JPEG and PNG files.
///
/// Every image is decoded (`ImageDecoder`), converted to `channels` (1: PIL "L" luma; 3: RGB,
/// grayscale replicated) and then transformed with `transform` (`ResizeCenterCrop`:
/// torchvision `Resize(shorter)` + `CenterCrop(crop)`), giving `[channels, crop, crop]` bytes.
/// Channel conversion happens before resizing, as `Image.open(f).convert(mode)` followed by the
/// transforms.
public enum ImageFolder {
    /// The result of an eager read.
    public struct Loaded: Sendable {
        /// The decoded samples. `ids` are the files' indices in `index.paths`; with skipped
        /// files the ids have gaps, so every id still names its file.
        public let dataset: ImageDataset
        /// Files skipped with `skipBadFiles` (empty otherwise), in id order.
        public let skipped: [SkippedFile]
        public let index: ImageFolderIndex
    }

    /// Decodes every image of the folder into memory (for small sets: OOD test sets, tens of
    /// thousands of images at most).
    /// - Parameter skipBadFiles: when true, files that cannot be read or decoded are left out and
    ///   reported in `skipped` instead of ending the read.
    /// - Throws: the scan's errors (`ImageFileError.cannotList`, `.emptyFolder`); without
    ///   `skipBadFiles`, the first bad file's `DatasetError.cannotRead` or
    ///   `ImageFileError.notAnImage` / `.corruptImage` / `.unsupportedImage`; with it,
    ///   `.emptyFolder` if every file was bad.
    public static func load(root: String, layout: FolderLayout = .classFolders, channels: Int,
                            transform: ResizeCenterCrop, skipBadFiles: Bool = false) throws -> Loaded {
        try load(index: try ImageFolderIndex.scan(root: root, layout: layout), channels: channels, transform: transform,
                 skipBadFiles: skipBadFiles)
    }

    /// Like `load(root:...)`, for an index already scanned.
    public static func load(index: ImageFolderIndex, channels: Int, transform: ResizeCenterCrop,
                            skipBadFiles: Bool = false) throws -> Loaded {
        precondition(channels == 1 || channels == 3, "ImageFolder.load: channels must be 1 or 3, got \(channels)")
        let root = index.root
        let sampleBytes = channels * transform.cropHeight * transform.cropWidth
        var images = [UInt8]()
        images.reserveCapacity(index.count * sampleBytes)
        var labels: [Int] = [], ids: [Int] = []
        var skipped: [SkippedFile] = []
        var scratch = [UInt8](repeating: 0, count: sampleBytes)
        for (k, path) in index.paths.enumerated() {
            let id = index.ids[k]
            do {
                let image = try ImageDecoder.decodeFile(path, channels: channels)
                scratch.withUnsafeMutableBufferPointer { transform.apply(image, into: $0) }
            } catch {
                guard skipBadFiles else { throw error }
                skipped.append(SkippedFile(path: path, reason: "\(error)"))
                continue
            }
            images.append(contentsOf: scratch)
            labels.append(index.labels[k])
            ids.append(id)
        }
        guard !labels.isEmpty else {
            throw ImageFileError.emptyFolder(path: root, detail: "all \(index.count) image files were skipped as unreadable; first: \(skipped.first?.reason ?? "-")")
        }
        let dataset = ImageDataset(images: images, labels: labels, ids: ids, channels: channels,
                                   height: transform.cropHeight, width: transform.cropWidth,
                                   classCount: index.classCount, classNames: index.classNames)
        return Loaded(dataset: dataset, skipped: skipped, index: index)
    }
}

/// A source of fixed-size byte samples for `BatchLoader`: an in-memory `ImageDataset` or a
/// folder decoded on demand. Positions are `0..<count`.
public protocol BatchSource: Sendable {
    var count: Int { get }
    /// Output sample shape `[channels, height, width]`.
    var channels: Int { get }
    var height: Int { get }
    var width: Int { get }
    func label(at position: Int) -> Int
    /// Stable global sample id (keys the augmentation draws).
    func id(at position: Int) -> Int
    /// Writes the sample at `position`, as seen in `epoch` (augmented when the source has a
    /// training transform), into `destination`, `[channels, height, width]`.
    /// - Throws: decoding errors (lazy sources only).
    func sample(at position: Int, epoch: Int, into destination: UnsafeMutableBufferPointer<UInt8>) throws
}

/// An `ImageDataset` as a `BatchSource`, optionally augmented with `Augmentation`
/// (random crop with zero padding + flip, keyed by (seed, epoch, id)).
public struct InMemorySource: BatchSource {
    public let dataset: ImageDataset
    public let augmentation: Augmentation?

    public init(_ dataset: ImageDataset, augmentation: Augmentation? = nil) {
        self.dataset = dataset
        self.augmentation = augmentation
    }

    public var count: Int { dataset.count }
    public var channels: Int { dataset.channels }
    public var height: Int { dataset.height }
    public var width: Int { dataset.width }
    public func label(at position: Int) -> Int { dataset.labels[position] }
    public func id(at position: Int) -> Int { dataset.ids[position] }

    public func sample(at position: Int, epoch: Int, into destination: UnsafeMutableBufferPointer<UInt8>) throws {
        precondition(position >= 0 && position < dataset.count, "InMemorySource.sample: position \(position) not in 0..<\(dataset.count)")
        let bytes = dataset.sampleBytes
        precondition(destination.count == bytes, "InMemorySource.sample: destination has \(destination.count) bytes, expected \(bytes)")
        dataset.images.withUnsafeBufferPointer { all in
            let src = UnsafeBufferPointer(rebasing: all[position * bytes ..< (position + 1) * bytes])
            if let augmentation {
                augmentation.apply(src, channels: dataset.channels, height: dataset.height, width: dataset.width,
                                   id: dataset.ids[position], epoch: epoch, into: destination)
            } else {
                _ = destination.initialize(from: src)
            }
        }
    }
}

/// An image folder decoded lazily, one file per `sample` call (for sets too large for memory,
/// such as ImageNet-1k's 1.28M training images). Nothing is cached.
///
/// Evaluation (`training == nil`): decode, convert channels, `evaluation` (resize shorter side +
/// centre crop). Training: decode, convert channels, `training` (random-resized-crop + flip keyed
/// by (seed, epoch, id)). Positions index `index.paths`; ids are `index.ids` (the files' indices
/// in the full scan). Bad files throw when their batch is assembled; run
/// `ImageFolderIndex.verified(skipBadFiles:fullDecode:)` first to fail or skip them up front.
public struct LazyImageFolder: BatchSource {
    public let index: ImageFolderIndex
    public let channels: Int
    public let evaluation: ResizeCenterCrop
    public let training: RandomResizedCrop?

    /// - Precondition: channels 1 or 3; with a training transform, `training.size` equals the
    ///   evaluation crop (one output shape per source).
    public init(index: ImageFolderIndex, channels: Int, evaluation: ResizeCenterCrop, training: RandomResizedCrop? = nil) {
        precondition(channels == 1 || channels == 3, "LazyImageFolder: channels must be 1 or 3, got \(channels)")
        if let training {
            precondition(training.size == evaluation.cropHeight && training.size == evaluation.cropWidth,
                         "LazyImageFolder: training size \(training.size) differs from the evaluation crop \(evaluation.cropHeight)x\(evaluation.cropWidth)")
        }
        self.index = index
        self.channels = channels
        self.evaluation = evaluation
        self.training = training
    }

    /// Scans `root` (see `ImageFolderIndex.scan`) and wraps it.
    public init(root: String, layout: FolderLayout = .classFolders, channels: Int,
                evaluation: ResizeCenterCrop, training: RandomResizedCrop? = nil) throws {
        self.init(index: try ImageFolderIndex.scan(root: root, layout: layout), channels: channels,
                  evaluation: evaluation, training: training)
    }

    public var count: Int { index.count }
    public var height: Int { evaluation.cropHeight }
    public var width: Int { evaluation.cropWidth }
    public func label(at position: Int) -> Int { index.labels[position] }
    public func id(at position: Int) -> Int { index.ids[position] }

    /// The decoded, channel-converted image at `position`, before any resizing.
    public func decode(at position: Int) throws -> DecodedImage {
        precondition(position >= 0 && position < count, "LazyImageFolder.decode: position \(position) not in 0..<\(count)")
        return try ImageDecoder.decodeFile(index.paths[position], channels: channels)
    }

    public func sample(at position: Int, epoch: Int, into destination: UnsafeMutableBufferPointer<UInt8>) throws {
        precondition(destination.count == channels * height * width,
                     "LazyImageFolder.sample: destination has \(destination.count) bytes, expected [\(channels), \(height), \(width)]")
        let image = try decode(at: position)
        if let training {
            training.apply(image, id: index.ids[position], epoch: epoch, into: destination)
        } else {
            evaluation.apply(image, into: destination)
        }
    }
}

/// Another source with the CIFAR-style `Augmentation` (random crop with zero padding + flip,
/// keyed by (seed, epoch, global id)) applied to each of its samples, e.g. a lazily decoded
/// folder after its resize + centre crop. For an in-memory set this gives exactly the bytes of
/// `InMemorySource(dataset, augmentation:)`, so lazy and eager loading of one folder agree.
public struct AugmentedSource: BatchSource {
    public let base: any BatchSource
    public let augmentation: Augmentation

    public init(_ base: any BatchSource, augmentation: Augmentation) {
        self.base = base
        self.augmentation = augmentation
    }

    public var count: Int { base.count }
    public var channels: Int { base.channels }
    public var height: Int { base.height }
    public var width: Int { base.width }
    public func label(at position: Int) -> Int { base.label(at: position) }
    public func id(at position: Int) -> Int { base.id(at: position) }

    /// - Throws: the base source's errors.
    public func sample(at position: Int, epoch: Int, into destination: UnsafeMutableBufferPointer<UInt8>) throws {
        var plain = [UInt8](repeating: 0, count: destination.count)
        try plain.withUnsafeMutableBufferPointer { try base.sample(at: position, epoch: epoch, into: $0) }
        plain.withUnsafeBufferPointer {
            augmentation.apply($0, channels: channels, height: height, width: width, id: base.id(at: position),
                               epoch: epoch, into: destination)
        }
    }
}
