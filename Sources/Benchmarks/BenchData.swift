import ArgumentParser
import CommandSupport
import Datasets
import Foundation
import Training
import TensorCore

/// `umtrain bench data`: batch-loader throughput (images/s), augmentation off and on.
struct BenchData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Batch-loader throughput in images/s, augmentation off and on (medians over repeats).",
        discussion: """
        Each repeat starts a BatchLoader (one background thread, bounded prefetch queue) over \
        shuffled sampler batches and times the consumer from start to the last batch; the \
        consumer does no work, so this is the loader's ceiling. In-memory sets: Fashion-MNIST \
        train (28x28x1; synthetic bytes of the same shape if --fashion-mnist is missing) and a \
        synthetic 32x32x3 set; augmentation = random crop (zero padding 4) + horizontal flip. \
        With --folder DIR: JPEG/PNG files decoded on the loader thread per batch (nothing \
        cached), evaluation = resize shorter side + centre crop, augmentation = \
        random-resized-crop + flip; a decode-only figure is printed too. The loader should \
        deliver at least 10x the training throughput (ResNet-20 trains at ~200 images/s/core).
        """
    )

    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Samples per batch.")
    var batchSize: Int = 128

    @Option(help: "Batches per repeat (in-memory sets).")
    var batches: Int = 100

    @Option(help: "Timed repeats (after 1 warm-up).")
    var repeats: Int = 5

    @Option(help: "Finished batches the loader may queue ahead.")
    var prefetch: Int = 3

    @Option(help: ArgumentHelp("Fashion-MNIST directory (gzipped IDX files).", valueName: "dir"))
    var fashionMnist: String = "/usr/share/datasets/fashion-mnist"

    @Option(help: ArgumentHelp("Also benchmark decoding the JPEG/PNG files of this folder.", valueName: "dir"))
    var folder: String?

    @Option(help: "Layout of --folder: flat or class-folders.")
    var folderLayout: String = "flat"

    @Option(help: "Output side of --folder images (centre crop / random-resized-crop size).")
    var folderSize: Int = 224

    @Option(help: "Shorter side after resizing, before the centre crop (--folder, evaluation).")
    var folderResize: Int = 256

    @Option(help: "Channels of --folder images: 1 (PIL L) or 3 (RGB).")
    var folderChannels: Int = 3

    @Option(help: "At most this many --folder files per repeat (0 = all).")
    var folderLimit: Int = 256

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1, got \(batchSize).") }
        guard batches >= 1 else { throw ValidationError("--batches must be at least 1, got \(batches).") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1, got \(repeats).") }
        guard prefetch >= 1 else { throw ValidationError("--prefetch must be at least 1, got \(prefetch).") }
        guard FolderLayout(rawValue: folderLayout) != nil else {
            throw ValidationError("--folder-layout must be 'flat' or 'class-folders', got '\(folderLayout)'.")
        }
        guard folderSize >= 1 && folderResize >= 1 else {
            throw ValidationError("--folder-size and --folder-resize must be at least 1, got \(folderSize) and \(folderResize).")
        }
        guard folderChannels == 1 || folderChannels == 3 else {
            throw ValidationError("--folder-channels must be 1 or 3, got \(folderChannels).")
        }
        guard folderLimit >= 0 else { throw ValidationError("--folder-limit must be >= 0, got \(folderLimit).") }
    }

    /// Times one loader run over `plans`; returns images/s.
    private func timeLoader(_ source: any BatchSource, plans: [BatchPlan], normalizer: ChannelNormalizer) throws -> Double {
        let images = plans.reduce(0) { $0 + $1.positions.count }
        let t0 = now()
        let loader = BatchLoader(source: source, plans: plans, normalizer: normalizer, prefetch: prefetch)
        var got = 0
        while let batch = try loader.next() { got += batch.count }
        let elapsed = now() - t0
        precondition(got == images, "bench data: loader delivered \(got) of \(images) images")
        return Double(images) / elapsed
    }

    /// Shuffled sampler batches for `epochs` epochs until `batchCount` batches of one rank.
    private func plans(count: Int, batchCount: Int, firstEpoch: Int) -> [BatchPlan] {
        var result: [BatchPlan] = []
        var epoch = firstEpoch
        let sampler = DistributedSampler(datasetSize: count, rank: 0, worldSize: 1, shuffle: true, seed: 1, dropLast: false)
        while result.count < batchCount {
            for b in sampler.batches(epoch: epoch, globalBatchSize: batchSize, dropIncompleteBatch: true) where result.count < batchCount {
                result.append(BatchPlan(epoch: epoch, batch: b))
            }
            epoch += 1
        }
        return result
    }

    private func row(_ name: String, _ mode: String, _ rates: [Double]) -> String {
        name.padding(toLength: 36, withPad: " ", startingAt: 0)
            + mode.padding(toLength: 28, withPad: " ", startingAt: 0)
            + fmt(median(rates), 0).padding(toLength: 16, withPad: " ", startingAt: 0)
            + fmt(rates.max()!, 0)
    }

    private func synthetic(count: Int, channels: Int, side: Int) -> ImageDataset {
        var rng = SplitMix64(seed: 12345)
        var images = [UInt8](repeating: 0, count: count * channels * side * side)
        images.withUnsafeMutableBufferPointer { p in
            var i = 0
            while i < p.count {
                var v = rng.next()
                for _ in 0..<8 where i < p.count { p[i] = UInt8(truncatingIfNeeded: v); v >>= 8; i += 1 }
            }
        }
        return ImageDataset(images: images, labels: (0..<count).map { $0 % 10 }, channels: channels,
                            height: side, width: side, classCount: 10)
    }

    func run() throws {
        runOnRanks(runtime) { rt in
            rt.log(try rt.header(command: "bench data"))
            rt.log("loader: batch \(batchSize), prefetch \(prefetch), 1 background thread per rank, \(rt.worldSize) rank(s) running at once; "
                + "median of \(repeats) repeats (best in the last column)")
            rt.log("source".padding(toLength: 36, withPad: " ", startingAt: 0)
                + "transform".padding(toLength: 28, withPad: " ", startingAt: 0)
                + "img_per_s_med   img_per_s_best")

            var sets: [(String, ImageDataset, ChannelNormalizer)] = []
            if FileManager.default.fileExists(atPath: fashionMnist + "/train-images-idx3-ubyte.gz")
                || FileManager.default.fileExists(atPath: fashionMnist + "/train-images-idx3-ubyte") {
                let fmnist = try FashionMNIST.load(directory: fashionMnist, split: .train)
                sets.append(("fashion-mnist train 28x28x1", fmnist, ChannelNormalizer(mean: [0.2860], std: [0.3530])))
            } else {
                sets.append(("synthetic 60000 x 28x28x1", synthetic(count: 60000, channels: 1, side: 28),
                             ChannelNormalizer(mean: [0.5], std: [0.5])))
            }
            sets.append(("synthetic 50000 x 32x32x3", synthetic(count: 50000, channels: 3, side: 32),
                         ChannelNormalizer(mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616])))

            var slowest = Double.infinity
            for (name, data, normalizer) in sets {
                guard data.count >= batchSize else {
                    rt.log("\(name): fewer samples (\(data.count)) than --batch-size \(batchSize); skipped")
                    continue
                }
                let modes: [(String, Augmentation?)] = [
                    ("none", nil),
                    ("crop(pad 4) + flip", Augmentation(cropPadding: 4, horizontalFlip: true, seed: 7)),
                ]
                for (mode, augmentation) in modes {
                    let source = InMemorySource(data, augmentation: augmentation)
                    var rates: [Double] = []
                    for r in 0..<(repeats + 1) {
                        let rate = try timeLoader(source, plans: plans(count: data.count, batchCount: batches, firstEpoch: r),
                                                  normalizer: normalizer)
                        if r >= 1 { rates.append(rate) }
                    }
                    slowest = min(slowest, median(rates))
                    rt.log(row(name, mode, rates))
                }
            }

            if let folder {
                try benchFolder(folder, rt: rt)
            }
            if slowest.isFinite {
                let verdict = slowest >= 2000 ? "meets" : "BELOW"
                rt.log("in-memory slowest median \(fmt(slowest, 0)) img/s \(verdict) the 2000 img/s target "
                    + "(10x ResNet-20 training at ~200 img/s/core)")
            }
        }
    }

    private func benchFolder(_ folder: String, rt: Runtime) throws {
        let layout = FolderLayout(rawValue: folderLayout)!
        let full = try ImageFolderIndex.scan(root: folder, layout: layout)
        let limit = folderLimit == 0 ? full.count : min(folderLimit, full.count)
        let index = full.prefix(limit)
        let evaluation = ResizeCenterCrop(resizeShorterSide: folderResize, cropSize: folderSize)
        let normalizer = folderChannels == 3
            ? ChannelNormalizer(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])
            : ChannelNormalizer(mean: [0.5], std: [0.5])
        let name = "folder (\(limit) files) \(folderSize)x\(folderSize)x\(folderChannels)"

        // Decode only (no resize), on this thread: the libjpeg/libpng cost.
        var fileBytes = 0
        for path in index.paths {
            fileBytes += (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        }
        var decodeRates: [Double] = []
        var pixels = 0
        for r in 0..<(repeats + 1) {
            pixels = 0
            let t0 = now()
            for path in index.paths {
                let image = try ImageDecoder.decodeFile(path, channels: folderChannels)
                pixels += image.height * image.width
            }
            let elapsed = now() - t0
            if r >= 1 { decodeRates.append(Double(limit) / elapsed) }
        }
        let megapixels = Double(pixels) / 1e6 / Double(limit)
        rt.log(row(name, "decode only (no loader)", decodeRates)
            + "   (mean \(fmt(megapixels, 3)) Mpixel, \(fileBytes / limit / 1024) KiB per file; "
            + "\(fmt(median(decodeRates) * megapixels, 1)) Mpixel/s)")

        let batch = min(batchSize, limit)
        let modes: [(String, RandomResizedCrop?)] = [
            ("resize \(folderResize) + centre crop", nil),
            ("random-resized-crop + flip", RandomResizedCrop(size: folderSize, seed: 7)),
        ]
        for (mode, training) in modes {
            let source = LazyImageFolder(index: index, channels: folderChannels, evaluation: evaluation, training: training)
            var rates: [Double] = []
            for r in 0..<(repeats + 1) {
                let order = Shuffle.permutation(count: limit, seed: 1, stream: UInt64(r))
                var plans: [BatchPlan] = []
                var start = 0
                while start + batch <= limit {
                    plans.append(BatchPlan(epoch: r, step: plans.count, positions: Array(order[start ..< start + batch])))
                    start += batch
                }
                let rate = try timeLoader(source, plans: plans, normalizer: normalizer)
                if r >= 1 { rates.append(rate) }
            }
            rt.log(row(name, mode, rates))
        }
    }
}
