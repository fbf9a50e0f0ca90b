import TensorCore

/// Training-time augmentation of byte images: torchvision's `RandomCrop(size, padding: p)`
/// (zero fill) followed by `RandomHorizontalFlip(0.5)`, the standard CIFAR recipe.
///
/// The random draws are keyed by (seed, epoch, global sample id), not by rank or step: a sample
/// gets a new crop and flip every epoch, different samples get independent draws, and the result
/// is the same whatever the world size or the rank that holds the sample (so runs with the same
/// seed are reproducible across world sizes, and ranks never share one stream).
/// The generator is `SplitMix64(seed: seed, stream: mix(mix(epoch ^ 0x617567) ^ id))`
/// (0x617567 = ASCII "aug"); the draws, in order, are `top = uniform(below: 2p + 1)`,
/// `left = uniform(below: 2p + 1)`, `flip = next() >> 63 == 1`.
public struct Augmentation: Sendable, Equatable {
    /// Zero padding p on every side before the crop back to H x W (0 disables the crop).
    public var cropPadding: Int
    /// Mirror left-right with probability 0.5.
    public var horizontalFlip: Bool
    public var seed: UInt64

    public init(cropPadding: Int = 4, horizontalFlip: Bool = true, seed: UInt64) {
        precondition(cropPadding >= 0, "Augmentation: cropPadding must be >= 0, got \(cropPadding)")
        self.cropPadding = cropPadding
        self.horizontalFlip = horizontalFlip
        self.seed = seed
    }

    /// The draws for one sample: the crop's top-left corner in the padded image,
    /// `top, left` in `0...2p`, and whether to flip (`false` when flipping is off).
    /// Output pixel (y, x) = input pixel (y + top - p, x' + left - p), with x' = W-1-x when
    /// flipped, else x; 0 when that falls outside the input.
    public func parameters(id: Int, epoch: Int) -> (top: Int, left: Int, flip: Bool) {
        let stream = SplitMix64.mix(SplitMix64.mix(UInt64(epoch) ^ 0x61_75_67) ^ UInt64(bitPattern: Int64(id)))
        var rng = SplitMix64(seed: seed, stream: stream)
        let span = UInt64(2 * cropPadding + 1)
        let top = Int(rng.uniform(below: span))
        let left = Int(rng.uniform(below: span))
        let flip = rng.next() >> 63 == 1
        return (top, left, horizontalFlip && flip)
    }

    /// Augments one sample `[C, H, W]` from `source` into `destination` (same size, must not overlap).
    public func apply(_ source: UnsafeBufferPointer<UInt8>, channels: Int, height: Int, width: Int,
                      id: Int, epoch: Int, into destination: UnsafeMutableBufferPointer<UInt8>) {
        precondition(source.count == channels * height * width && destination.count == source.count,
                     "Augmentation.apply: source \(source.count) / destination \(destination.count) bytes for [C=\(channels), H=\(height), W=\(width)]")
        let (top, left, flip) = parameters(id: id, epoch: epoch)
        let dy = top - cropPadding, dx = left - cropPadding
        for c in 0..<channels {
            let plane = c * height * width
            for y in 0..<height {
                let sy = y + dy
                let row = plane + y * width
                if sy < 0 || sy >= height {
                    for x in 0..<width { destination[row + x] = 0 }
                    continue
                }
                let sourceRow = plane + sy * width
                for x in 0..<width {
                    let sx = (flip ? width - 1 - x : x) + dx
                    destination[row + x] = (sx >= 0 && sx < width) ? source[sourceRow + sx] : 0
                }
            }
        }
    }
}

extension ImageDataset {
    /// Like `normalizedBatch(positions:normalizer:into:)`, but each sample is first augmented
    /// with the draws for (its global id, `epoch`).
    public func augmentedNormalizedBatch(positions: [Int], augmentation: Augmentation, epoch: Int,
                                         normalizer: ChannelNormalizer,
                                         into destination: UnsafeMutableBufferPointer<Float>) {
        precondition(normalizer.channels == channels,
                     "ImageDataset.augmentedNormalizedBatch: normalizer has \(normalizer.channels) channels, dataset \(channels)")
        let bytes = sampleBytes
        precondition(destination.count == positions.count * bytes,
                     "ImageDataset.augmentedNormalizedBatch: destination has \(destination.count) floats, expected [\(positions.count), \(channels), \(height), \(width)] = \(positions.count * bytes)")
        var scratch = [UInt8](repeating: 0, count: bytes)
        images.withUnsafeBufferPointer { src in
            scratch.withUnsafeMutableBufferPointer { tmp in
                for (k, p) in positions.enumerated() {
                    precondition(p >= 0 && p < count, "ImageDataset.augmentedNormalizedBatch: position \(p) not in 0..<\(count)")
                    augmentation.apply(UnsafeBufferPointer(rebasing: src[p * bytes ..< (p + 1) * bytes]),
                                       channels: channels, height: height, width: width,
                                       id: ids[p], epoch: epoch, into: tmp)
                    normalizer.normalize(UnsafeBufferPointer(tmp), planeSize: height * width,
                                         into: UnsafeMutableBufferPointer(rebasing: destination[k * bytes ..< (k + 1) * bytes]))
                }
            }
        }
    }
}
