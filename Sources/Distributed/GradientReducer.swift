/// A contiguous range of the gradient arena reduced by one allreduce.
public struct GradientBucket: Equatable, Sendable {
    /// Element offset of the bucket in the arena.
    public var offset: Int
    /// Number of Float elements.
    public var count: Int
    /// Indices (registration order) of the parameters in this bucket.
    public var parameterIndices: [Int]
}

/// Plans gradient buckets the way PyTorch DDP does: parameters are taken in REVERSE
/// registration order (the order backward produces their gradients), and consecutive ones
/// are grouped until a bucket reaches its cap: about 1 MiB for the first bucket (so
/// reduction can start early), then about 25 MiB. A parameter is never split. Because the
/// arena stores parameters in registration order, each bucket is one contiguous range.
///
/// - Parameters:
///   - sizes: element counts of the trainable parameters, in registration order.
///   - firstBucketBytes: cap of the first bucket in bytes (default 1 MiB).
///   - bucketBytes: cap of the other buckets in bytes (default 25 MiB).
/// - Returns: buckets in reduction order (every rank computes the same plan).
public func planGradientBuckets(sizes: [Int], firstBucketBytes: Int = 1 << 20,
                                bucketBytes: Int = 25 << 20) -> [GradientBucket] {
    precondition(firstBucketBytes > 0 && bucketBytes > 0, "bucket caps must be positive")
    var offsets = [Int](repeating: 0, count: sizes.count)
    var acc = 0
    for (i, s) in sizes.enumerated() {
        precondition(s >= 0, "parameter \(i) has negative size \(s)")
        offsets[i] = acc
        acc += s
    }
    var buckets: [GradientBucket] = []
    var current: [Int] = []
    var currentCount = 0
    func close() {
        guard !current.isEmpty else { return }
        let lowest = current.last!
        buckets.append(GradientBucket(offset: offsets[lowest], count: currentCount, parameterIndices: current))
        current = []
        currentCount = 0
    }
    for i in stride(from: sizes.count - 1, through: 0, by: -1) {
        if sizes[i] == 0 { continue }
        let cap = (buckets.isEmpty ? firstBucketBytes : bucketBytes) / MemoryLayout<Float>.size
        if !current.isEmpty && currentCount + sizes[i] > cap { close() }
        current.append(i)
        currentCount += sizes[i]
        if currentCount >= (buckets.isEmpty ? firstBucketBytes : bucketBytes) / MemoryLayout<Float>.size { close() }
    }
    close()
    return buckets
}

/// Sums gradients across ranks, bucket by bucket, in the same order on every rank.
///
/// The trainer backpropagates each rank's local loss SUM divided by the GLOBAL sample count
/// of the step, so a plain SUM allreduce yields the exact mean gradient even when ranks hold
/// different numbers of samples (and equals "SUM then 1/worldSize" when they hold the same).
public struct GradientReducer {
    public let buckets: [GradientBucket]

    public init(buckets: [GradientBucket]) { self.buckets = buckets }

    /// Allreduces (SUM) every bucket of `arena` in place.
    ///
    /// - Throws: ``CommunicatorError`` (MPI failure or stall).
    public func reduce(_ arena: UnsafeMutableBufferPointer<Float>, comm: Communicator) throws {
        guard comm.worldSize > 1 else { return }
        for b in buckets {
            precondition(b.offset + b.count <= arena.count,
                         "bucket [\(b.offset), \(b.offset + b.count)) outside the arena of \(arena.count)")
            try comm.allreduce(UnsafeMutableBufferPointer(rebasing: arena[b.offset..<(b.offset + b.count)]), op: .sum)
        }
    }
}

/// Per-channel batch statistics combined across ranks, weighted by sample counts
/// (synchronised BatchNorm). Sums are in Double so that the count-weighted combination is
/// exact to double precision whatever the split.
public struct ChannelStatistics: Equatable, Sendable {
    /// Per-channel sum of x over the batch and spatial positions. `[C]`.
    public var sum: [Double]
    /// Per-channel sum of x². `[C]`.
    public var sumOfSquares: [Double]
    /// Number of values per channel (samples x H x W). 0 for a rank with no samples.
    public var count: Double

    public init(sum: [Double], sumOfSquares: [Double], count: Double) {
        precondition(sum.count == sumOfSquares.count, "sum [\(sum.count)] vs sumOfSquares [\(sumOfSquares.count)]")
        self.sum = sum
        self.sumOfSquares = sumOfSquares
        self.count = count
    }

    /// Mean per channel (0 when count is 0).
    public var mean: [Double] { sum.map { count > 0 ? $0 / count : 0 } }

    /// Biased variance E[x²] - E[x]², used to normalise (PyTorch BatchNorm semantics).
    public var biasedVariance: [Double] {
        guard count > 0 else { return [Double](repeating: 0, count: sum.count) }
        return zip(sum, sumOfSquares).map { s, q in max(0, q / count - (s / count) * (s / count)) }
    }

    /// Unbiased variance (divides by count - 1), used for `running_var`.
    public var unbiasedVariance: [Double] {
        guard count > 1 else { return biasedVariance }
        return biasedVariance.map { $0 * count / (count - 1) }
    }

    /// Sums the statistics of every rank (one allreduce of `[sum, sumOfSquares, count]`).
    public func allreduced(_ comm: Communicator) throws -> ChannelStatistics {
        var buf = sum + sumOfSquares + [count]
        try comm.allreduce(&buf, op: .sum)
        let c = sum.count
        return ChannelStatistics(sum: Array(buf[0..<c]), sumOfSquares: Array(buf[c..<(2 * c)]), count: buf[2 * c])
    }
}
