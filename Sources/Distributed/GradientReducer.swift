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
