/// Per-channel normalisation of byte images: `y = (x / 255 - mean[c]) / std[c]`.
///
/// Matches torchvision's `ToTensor()` followed by `Normalize(mean, std)` bit for bit: each value
/// is computed in Float32 as `(Float(x) / 255 - mean[c]) / std[c]`, one rounding per operation,
/// looked up from a precomputed `[C, 256]` table.
public struct ChannelNormalizer: Sendable {
    /// Per-channel mean, in units of the [0, 1]-scaled pixel.
    public let mean: [Float]
    /// Per-channel standard deviation (> 0), same units.
    public let std: [Float]
    /// `table[c * 256 + x]` = normalised value of byte x in channel c.
    public let table: [Float]

    /// - Precondition: `mean.count == std.count >= 1`, every std > 0 and finite.
    public init(mean: [Float], std: [Float]) {
        precondition(!mean.isEmpty && mean.count == std.count,
                     "ChannelNormalizer: mean has \(mean.count) channels, std \(std.count); need equal and >= 1")
        precondition(std.allSatisfy { $0 > 0 && $0.isFinite }, "ChannelNormalizer: std must be > 0 and finite, got \(std)")
        self.mean = mean
        self.std = std
        var table = [Float](repeating: 0, count: mean.count * 256)
        for c in 0..<mean.count {
            for x in 0..<256 {
                table[c * 256 + x] = (Float(x) / 255 - mean[c]) / std[c]
            }
        }
        self.table = table
    }

    /// Number of channels C.
    public var channels: Int { mean.count }

    /// Normalises `source`, laid out `[N, C, planeSize]` (planeSize = H * W), into `destination`
    /// (same count, same layout).
    /// - Precondition: `source.count == destination.count`, a multiple of `C * planeSize`.
    public func normalize(_ source: UnsafeBufferPointer<UInt8>, planeSize: Int,
                          into destination: UnsafeMutableBufferPointer<Float>) {
        let c = channels
        precondition(planeSize >= 1 && source.count % (c * planeSize) == 0,
                     "ChannelNormalizer.normalize: source has \(source.count) bytes, not a multiple of C (\(c)) x H*W (\(planeSize))")
        precondition(destination.count == source.count,
                     "ChannelNormalizer.normalize: destination has \(destination.count) floats, source \(source.count) bytes")
        table.withUnsafeBufferPointer { lut in
            var offset = 0
            while offset < source.count {
                for channel in 0..<c {
                    let row = channel * 256
                    for i in offset ..< offset + planeSize {
                        destination[i] = lut[row + Int(source[i])]
                    }
                    offset += planeSize
                }
            }
        }
    }
}

extension ImageDataset {
    /// Normalises the samples at `positions` into `destination`, `[positions.count, C, H, W]`,
    /// in the order given.
    /// - Precondition: `normalizer.channels == channels`, `destination.count == positions.count * C * H * W`.
    public func normalizedBatch(positions: [Int], normalizer: ChannelNormalizer,
                                into destination: UnsafeMutableBufferPointer<Float>) {
        precondition(normalizer.channels == channels,
                     "ImageDataset.normalizedBatch: normalizer has \(normalizer.channels) channels, dataset \(channels)")
        let bytes = sampleBytes
        precondition(destination.count == positions.count * bytes,
                     "ImageDataset.normalizedBatch: destination has \(destination.count) floats, expected [\(positions.count), \(channels), \(height), \(width)] = \(positions.count * bytes)")
        images.withUnsafeBufferPointer { src in
            for (k, p) in positions.enumerated() {
                precondition(p >= 0 && p < count, "ImageDataset.normalizedBatch: position \(p) not in 0..<\(count)")
                normalizer.normalize(UnsafeBufferPointer(rebasing: src[p * bytes ..< (p + 1) * bytes]),
                                     planeSize: height * width,
                                     into: UnsafeMutableBufferPointer(rebasing: destination[k * bytes ..< (k + 1) * bytes]))
            }
        }
    }

    /// Labels of the samples at `positions`, in the order given.
    public func labels(at positions: [Int]) -> [Int] { positions.map { labels[$0] } }
}
