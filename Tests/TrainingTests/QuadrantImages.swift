import TensorCore
import Datasets

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
}
