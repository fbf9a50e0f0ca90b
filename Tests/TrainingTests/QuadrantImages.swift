import TensorCore
import Datasets
import Training

/// The small synthetic set the trainer, estimate and tuning tests share: 1x8x8 images whose
/// class (`i % 4`) is which quadrant is bright. Pixel = `rng.next() % noise` plus `brightness`
/// inside the class's quadrant (`SplitMix64(seed:)`, one draw per pixel in order).
enum QuadrantImages {
    static func make(count: Int, seed: UInt64, noise: UInt64, brightness: Int) -> ImageDataset {
        var rng = SplitMix64(seed: seed)
        var images = [UInt8](repeating: 0, count: count * 64)
        var labels = [Int](repeating: 0, count: count)
        for i in 0..<count {
            labels[i] = i % 4
            for p in 0..<64 {
                let top = p / 8 < 4, left = p % 8 < 4
                let bright = [top && left, top && !left, !top && left, !top && !left][i % 4]
                images[i * 64 + p] = UInt8(truncatingIfNeeded: Int(rng.next() % noise) + (bright ? brightness : 0))
            }
        }
        return ImageDataset(images: images, labels: labels, channels: 1, height: 8, width: 8, classCount: 4)
    }

    /// The config these tests start from: cnn5 of width 4 on 1x8x8 images, 4 classes, the data
    /// normalised with `mean` and std 0.3, global batch 16, a constant schedule, `epochs` epochs.
    static func config(name: String = "", outputDir: String? = nil, epochs: Int, mean: Double = 0.3) -> RunConfig {
        var c = RunConfig()
        if !name.isEmpty { c.name = name }
        if let outputDir { c.outputDir = outputDir }
        c.model.arch = .cnn5
        c.model.width = 4
        c.model.imageSize = 8
        c.model.numClasses = 4
        c.data.mean = [mean]
        c.data.std = [0.3]
        c.train.epochs = epochs
        c.train.batchSize = 16
        c.train.schedule = .constant
        return c
    }
}
