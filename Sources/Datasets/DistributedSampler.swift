import TensorCore

/// One entry of a rank's shard of an epoch.
public struct ShardEntry: Sendable, Equatable, CustomStringConvertible {
    /// Index into the dataset's arrays (`0..<datasetSize`).
    public let position: Int
    /// The sample's stable global id (`ids[position]` of the sampler).
    public let id: Int
    /// True for an entry added to even out the shards: a repeat of a sample that some rank
    /// already sees this epoch. Train on it like any other entry (as PyTorch does), but drop it
    /// from anything gathered for metrics, so results do not depend on the world size.
    public let isPadding: Bool

    public init(position: Int, id: Int, isPadding: Bool) {
        self.position = position
        self.id = id
        self.isPadding = isPadding
    }

    public var description: String { isPadding ? "\(id)*" : "\(id)" }
}

/// A rank's part of one step of the global batch.
public struct SamplerBatch: Sendable, Equatable {
    /// 0-based step within the epoch.
    public let step: Int
    /// Indices into the dataset's arrays, in the order of the epoch's permutation.
    public let positions: [Int]
    /// Global ids of the same samples.
    public let ids: [Int]
    /// `isPadding[i]` marks a padding entry (see `ShardEntry.isPadding`).
    public let isPadding: [Bool]
    /// Entries of this step over ALL ranks, padding included (= the global batch size, except
    /// in a short last step). The same on every rank; no communication needed.
    public let globalCount: Int
    /// Non-padding entries of this step over all ranks. The same on every rank.
    public let globalRealCount: Int

    /// Entries on this rank (may be 0: such a rank still takes part in the step's collectives).
    public var count: Int { positions.count }
    /// Non-padding entries on this rank.
    public var realCount: Int { isPadding.lazy.filter { !$0 }.count }
}

/// Splits a dataset across the ranks of a data-parallel job: PyTorch's
/// `torch.utils.data.distributed.DistributedSampler` semantics, extended with padding marks and
/// global-batch stepping.
///
/// **Order.** For each epoch a permutation `perm` of the positions `0..<N` is drawn by
/// `Shuffle.permutation(count: N, seed: seed, stream: UInt64(epoch))` (Fisher-Yates driven by
/// SplitMix64 seeded from (seed, epoch)). It depends only on (N, seed, epoch): every rank computes
/// the same one, whatever the world size, and every epoch has a new one (call with the epoch
/// number, as PyTorch's `set_epoch`). `shuffle: false` gives `perm = [0, 1, ..., N-1]`.
///
/// **Equal shards** (as PyTorch). W = worldSize.
/// - padding (`dropLast: false`): `samplesPerRank = ceil(N / W)`, `totalSize = samplesPerRank * W`;
///   the global order is `perm` followed by `totalSize - N` entries wrapping around to the start
///   of `perm` (entry p is `perm[p % N]`); entries `p >= N` are marked as padding.
/// - `dropLast: true`: `samplesPerRank = floor(N / W)`; the global order is the first
///   `samplesPerRank * W` entries of `perm`; the tail is not used this epoch; no padding.
///
/// Rank r's shard is the strided slice of the global order at positions r, r + W, r + 2W, ...
///
/// **Steps.** A step consumes B = `globalBatchSize` consecutive entries of the global order:
/// step s covers global positions `[s*B, min((s+1)*B, totalSize))`, and rank r takes the
/// positions p in that range with `p % W == r`, in increasing p. So the union of a rank's
/// batches is exactly its shard, every rank runs the same number of steps,
/// `ceil(totalSize / B)` (or `floor` with `dropIncompleteBatch`), and when W does not divide B
/// the ranks' batch sizes differ by at most one within a step (a rank may even get an empty
/// batch in a short last step; it must still join the step's collectives, contributing zero).
///
/// **Resume.** Everything is a pure function of (ids, seed, epoch, rank, worldSize, B), so a run
/// resumed at (epoch e, step s) continues with `batches(epoch: e, globalBatchSize: B)[s...]`.
///
/// **Worked example** (the F1 case): N = 10, W = 4, padding, `shuffle: false`.
/// totalSize = 12; global order `0 1 2 3 4 5 6 7 8 9 0* 1*` (* = padding); shards
/// r0 `[0, 4, 8]`, r1 `[1, 5, 9]`, r2 `[2, 6, 0*]`, r3 `[3, 7, 1*]`. With B = 6: step 0 covers
/// positions 0..<6: r0 `[0, 4]`, r1 `[1, 5]`, r2 `[2]`, r3 `[3]` (globalCount 6, globalRealCount 6);
/// step 1 covers 6..<12: r0 `[8]`, r1 `[9]`, r2 `[6, 0*]`, r3 `[7, 1*]` (globalCount 6,
/// globalRealCount 4). With `dropLast: true`: samplesPerRank 2, shards `[0, 4]`, `[1, 5]`,
/// `[2, 6]`, `[3, 7]`; samples 8 and 9 are not seen this epoch.
public struct DistributedSampler: Sendable {
    /// Global id of the sample at each position (`0..<N` for a set read from file).
    public let ids: [Int]
    public let rank: Int
    public let worldSize: Int
    public let shuffle: Bool
    public let seed: UInt64
    public let dropLast: Bool

    /// A sampler over positions `0..<datasetSize` whose ids equal their positions.
    public init(datasetSize: Int, rank: Int, worldSize: Int, shuffle: Bool = true,
                seed: UInt64 = 0, dropLast: Bool = false) {
        precondition(datasetSize >= 0, "DistributedSampler: datasetSize must be >= 0, got \(datasetSize)")
        self.init(ids: Array(0..<datasetSize), rank: rank, worldSize: worldSize, shuffle: shuffle,
                  seed: seed, dropLast: dropLast)
    }

    /// A sampler over a dataset whose sample at position i has global id `ids[i]`
    /// (e.g. `ImageDataset.ids` of a training subset).
    public init(ids: [Int], rank: Int, worldSize: Int, shuffle: Bool = true,
                seed: UInt64 = 0, dropLast: Bool = false) {
        precondition(worldSize >= 1, "DistributedSampler: worldSize must be >= 1, got \(worldSize)")
        precondition(rank >= 0 && rank < worldSize,
                     "DistributedSampler: rank \(rank) not in 0..<\(worldSize) (worldSize)")
        self.ids = ids
        self.rank = rank
        self.worldSize = worldSize
        self.shuffle = shuffle
        self.seed = seed
        self.dropLast = dropLast
    }

    /// N, the number of samples.
    public var datasetSize: Int { ids.count }

    /// Entries in each rank's shard per epoch (PyTorch's `num_samples`).
    public var samplesPerRank: Int {
        dropLast ? datasetSize / worldSize : (datasetSize + worldSize - 1) / worldSize
    }

    /// Entries per epoch over all ranks, `samplesPerRank * worldSize` (PyTorch's `total_size`).
    public var totalSize: Int { samplesPerRank * worldSize }

    /// Padding entries per epoch over all ranks (0 with `dropLast`).
    public var paddingCount: Int { dropLast ? 0 : totalSize - datasetSize }

    /// The epoch's permutation of the positions `0..<datasetSize` (identical on all ranks).
    public func permutation(epoch: Int) -> [Int] {
        precondition(epoch >= 0, "DistributedSampler: epoch must be >= 0, got \(epoch)")
        return shuffle ? Shuffle.permutation(count: datasetSize, seed: seed, stream: UInt64(epoch))
                       : Array(0..<datasetSize)
    }

    /// The whole padded (or truncated) global order of the epoch, `totalSize` entries.
    public func globalOrder(epoch: Int) -> [ShardEntry] {
        let perm = permutation(epoch: epoch)
        let n = datasetSize
        return (0..<totalSize).map { p in
            let position = perm[p % n]
            return ShardEntry(position: position, id: ids[position], isPadding: p >= n)
        }
    }

    /// This rank's shard of the epoch: global order entries r, r + W, r + 2W, ... (`samplesPerRank` entries).
    public func shard(epoch: Int) -> [ShardEntry] {
        let order = globalOrder(epoch: epoch)
        return stride(from: rank, to: totalSize, by: worldSize).map { order[$0] }
    }

    /// Steps per epoch for global batch size B: `ceil(totalSize / B)`, or `floor(totalSize / B)`
    /// when `dropIncompleteBatch` (then a short last step is skipped). The same on every rank.
    public func stepsPerEpoch(globalBatchSize: Int, dropIncompleteBatch: Bool = false) -> Int {
        precondition(globalBatchSize >= 1, "DistributedSampler: globalBatchSize must be >= 1, got \(globalBatchSize)")
        return dropIncompleteBatch ? totalSize / globalBatchSize
                                   : (totalSize + globalBatchSize - 1) / globalBatchSize
    }

    /// This rank's batches for the epoch, one per step (see the type's documentation for how the
    /// global batch of B entries is dealt to the ranks). Batches may be empty on some ranks.
    public func batches(epoch: Int, globalBatchSize: Int, dropIncompleteBatch: Bool = false) -> [SamplerBatch] {
        let steps = stepsPerEpoch(globalBatchSize: globalBatchSize, dropIncompleteBatch: dropIncompleteBatch)
        let order = globalOrder(epoch: epoch)
        let realEnd = min(datasetSize, totalSize)   // entries before realEnd are not padding
        var result = [SamplerBatch]()
        result.reserveCapacity(steps)
        for s in 0..<steps {
            let start = s * globalBatchSize
            let end = min(start + globalBatchSize, totalSize)
            let first = start + ((rank - start % worldSize) + worldSize) % worldSize
            let entries = stride(from: first, to: end, by: worldSize).map { order[$0] }
            result.append(SamplerBatch(step: s, positions: entries.map(\.position), ids: entries.map(\.id),
                                       isPadding: entries.map(\.isPadding), globalCount: end - start,
                                       globalRealCount: max(0, min(end, realEnd) - start)))
        }
        return result
    }
}

/// One evaluation batch of a rank.
public struct EvaluationBatch: Sendable, Equatable {
    /// k: the batch covers positions `[k*B, min((k+1)*B, N))`; nil for the empty filler batch of
    /// a rank that has no batch in the last round.
    public let batchIndex: Int?
    /// The round r of the schedule this batch belongs to (batch k is in round `k / W`).
    public let round: Int
    /// Indices into the dataset's arrays.
    public let positions: Range<Int>
    /// Global ids of the same samples.
    public let ids: [Int]

    public var isEmpty: Bool { positions.isEmpty }
    public var count: Int { positions.count }
}

/// Fixed evaluation batches that do not depend on the world size, dealt round-robin.
///
/// Batch k is the run of consecutive positions `[k*B, min((k+1)*B, N))` (no shuffling, no padding,
/// no duplicates), so every batch, and any per-batch computation such as BN in evaluation mode or
/// a float summation order within a batch, is identical whatever W is. Batch k goes to rank
/// `k % W` in round `k / W`. All ranks run `roundCount = ceil(ceil(N / B) / W)` rounds; a rank
/// with no batch in the last round gets an empty batch (batchIndex nil) so collective calls stay
/// matched. Example: N = 10, B = 3, W = 3: batches [0,3) [3,6) [6,9) [9,10); rank 0 gets
/// batches 0 and 3, rank 1 gets batch 1 and an empty batch, rank 2 gets batch 2 and an empty batch.
public struct EvaluationSchedule: Sendable {
    public let ids: [Int]
    public let batchSize: Int
    public let worldSize: Int

    /// Schedule over positions `0..<datasetSize`, ids equal to positions.
    public init(datasetSize: Int, batchSize: Int, worldSize: Int) {
        precondition(datasetSize >= 0, "EvaluationSchedule: datasetSize must be >= 0, got \(datasetSize)")
        self.init(ids: Array(0..<datasetSize), batchSize: batchSize, worldSize: worldSize)
    }

    /// Schedule over a dataset whose sample at position i has global id `ids[i]`.
    public init(ids: [Int], batchSize: Int, worldSize: Int) {
        precondition(batchSize >= 1, "EvaluationSchedule: batchSize must be >= 1, got \(batchSize)")
        precondition(worldSize >= 1, "EvaluationSchedule: worldSize must be >= 1, got \(worldSize)")
        self.ids = ids
        self.batchSize = batchSize
        self.worldSize = worldSize
    }

    /// Number of non-empty batches, `ceil(N / B)`.
    public var batchCount: Int { (ids.count + batchSize - 1) / batchSize }
    /// Rounds every rank runs, `ceil(batchCount / W)`.
    public var roundCount: Int { (batchCount + worldSize - 1) / worldSize }

    /// Batch k (`0..<batchCount`).
    public func batch(_ k: Int) -> EvaluationBatch {
        precondition(k >= 0 && k < batchCount, "EvaluationSchedule.batch: k = \(k) not in 0..<\(batchCount)")
        let range = (k * batchSize) ..< min((k + 1) * batchSize, ids.count)
        return EvaluationBatch(batchIndex: k, round: k / worldSize, positions: range, ids: Array(ids[range]))
    }

    /// Rank r's batches, one per round: batch `round * W + r`, or an empty batch when that
    /// index is past the end.
    public func batches(rank: Int) -> [EvaluationBatch] {
        precondition(rank >= 0 && rank < worldSize, "EvaluationSchedule: rank \(rank) not in 0..<\(worldSize)")
        return (0..<roundCount).map { round in
            let k = round * worldSize + rank
            if k < batchCount { return batch(k) }
            return EvaluationBatch(batchIndex: nil, round: round, positions: ids.count ..< ids.count, ids: [])
        }
    }
}
