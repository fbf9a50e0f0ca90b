import Datasets
import Distributed
import Foundation
import NeuralNetwork
import OODDetection
import TensorCore

/// One rank's share of the training features that the feature-based detectors are fitted from:
/// a contiguous range of the fixed evaluation batches over the training ids in ascending order
/// (rank r holds batches `[r B / W, (r + 1) B / W)`), so the shards, read in rank order, are the
/// training set in id order. Nothing here is ever gathered whole onto one rank: memory per rank
/// falls as 1/W.
public struct TrainingShard: Sendable {
    /// `[n]` ascending sample ids of this rank's rows.
    public var ids: [Int64] = []
    /// `[n, D]` penultimate features.
    public var features: [Float] = []
    /// `[n]` class labels.
    public var labels: [Int] = []
    /// D (the same on every rank, also on a rank with no rows).
    public var featureDim = 0
    /// The number of rows over all ranks.
    public var totalCount = 0

    public init() {}

    /// Rows of this rank.
    public var count: Int { ids.count }

    /// The contiguous batch range of `rank` among `batchCount` batches.
    public static func batchRange(batchCount: Int, rank: Int, worldSize: Int) -> Range<Int> {
        (batchCount * rank / worldSize) ..< (batchCount * (rank + 1) / worldSize)
    }
}

/// Reductions over training shards that give the same bits for any number of ranks.
public enum ShardReduce {
    /// Runs `accumulate` on each rank in rank order, handing the running state on by broadcast:
    /// rank 0 starts from `state`, adds its rows, and broadcasts; rank 1 continues from that, and
    /// so on. With shards in id order this is exactly the one-rank loop over all rows, so sums in
    /// Double come out bitwise identical for any world size (W broadcasts of the state's size;
    /// the arithmetic is serial, which is cheap next to the forward passes that produced the
    /// features). Every rank returns the final state. Collective.
    public static func chain(_ state: inout [Double], comm: Communicator, _ accumulate: (inout [Double]) -> Void) throws {
        for root in 0..<comm.worldSize {
            if comm.rank == root { accumulate(&state) }
            try comm.broadcast(&state, root: root)
        }
    }

    /// The global top-k lists of a shard's lists: every rank's lists gathered and merged (ties by
    /// id), the same on every rank. Collective; all ranks pass lists for the same queries.
    public static func topK(_ local: TopK, metric: BankSearch.Metric, comm: Communicator) throws -> TopK {
        guard comm.worldSize > 1 else { return local }
        let values = try comm.allgather(local.values)
        let ids = try comm.allgather(local.ids)
        let invalid = try comm.allgather(local.invalid.map { UInt8($0 ? 1 : 0) })
        let parts = (0..<comm.worldSize).map { r in
            TopK(k: local.k, values: values[r], ids: ids[r], invalid: invalid[r].map { $0 != 0 })
        }
        return BankSearch.merge(parts, metric: metric)
    }

    /// The `percentile`-th percentile (0...100) of all ranks' `values` together, with
    /// numpy.percentile's linear interpolation (as ``ReAct/percentileThreshold(activations:percentile:)``
    /// on the concatenation): the two order statistics it needs are found exactly by a radix
    /// selection on the Float bit patterns (4 rounds of a 256-bin histogram allreduce), so no
    /// rank ever holds more than its own values. Collective.
    /// - Throws: communicator errors. Precondition: at least one value over all ranks; all finite.
    public static func percentile(_ values: [Float], _ percentile: Double, comm: Communicator) throws -> Double {
        precondition(percentile >= 0 && percentile <= 100, "percentile must be in 0...100, got \(percentile)")
        precondition(values.allSatisfy(\.isFinite), "percentile: values must be finite")
        let n = Int(try comm.allreduce(Int64(values.count), op: .sum))
        precondition(n > 0, "percentile of an empty set")
        let h = percentile / 100 * Double(n - 1)
        let lo = Int(h.rounded(.down))
        let hi = min(lo + 1, n - 1)
        let a = Double(try orderStatistic(values, lo, comm: comm))
        let b = hi == lo ? a : Double(try orderStatistic(values, hi, comm: comm))
        return a + (h - Double(lo)) * (b - a)
    }

    /// The value of rank `index` (0-based) in the ascending order of all ranks' values. Collective.
    static func orderStatistic(_ values: [Float], _ index: Int, comm: Communicator) throws -> Float {
        /// An order-preserving unsigned key (-0 and +0 equal, as in a sort by value).
        @inline(__always) func key(_ v: Float) -> UInt32 {
            let bits = (v == 0 ? Float(0) : v).bitPattern
            return bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
        }
        var prefix: UInt32 = 0
        var remaining = Int64(index)
        for round in 0..<4 {
            let shift = UInt32(24 - 8 * round)
            let maskHigh: UInt32 = round == 0 ? 0 : ~UInt32(0) << (shift + 8)
            var histogram = [Int64](repeating: 0, count: 256)
            values.withUnsafeBufferPointer { p in
                for v in p {
                    let k = key(v)
                    if k & maskHigh == prefix { histogram[Int((k >> shift) & 0xFF)] += 1 }
                }
            }
            try comm.allreduce(&histogram, op: .sum)
            var bin = 0
            while remaining >= histogram[bin] { remaining -= histogram[bin]; bin += 1 }
            prefix |= UInt32(bin) << shift
        }
        let bits = prefix & 0x8000_0000 != 0 ? prefix & 0x7FFF_FFFF : ~prefix
        return Float(bitPattern: bits)
    }
}

extension OODEvaluation {
    /// This rank's training shard: the penultimate features of its contiguous range of the fixed
    /// evaluation batches over the training ids (ascending), never gathered. Collective (D is
    /// agreed on by allreduce).
    static func trainingShard(model: Classifier, comm: Communicator, data: TrainingData, batchSize: Int,
                              cost: EvaluationCost = EvaluationCost()) throws -> TrainingShard {
        let ids = data.trainIds.sorted()
        let schedule = EvaluationSchedule(ids: ids, batchSize: batchSize, worldSize: 1)
        let mine = TrainingShard.batchRange(batchCount: schedule.batchCount, rank: comm.rank, worldSize: comm.worldSize)
            .map { schedule.batch($0) }
        var shard = TrainingShard()
        let labelOf = data.trainSet.labelsById()
        try data.forEachBatch(data.trainSet, data.trainSet.positionBatches(mine.map(\.ids))) { b, x, _ in
            _ = cost.time("fit: training-feature forward") { model.forward(x, context: .eval) }
            let f = model.penultimateFeatures!
            shard.featureDim = f.shape[1]
            shard.ids += mine[b].ids.map(Int64.init)
            shard.labels += mine[b].ids.map { labelOf[$0]! }
            shard.features += f.scalars
        }
        shard.featureDim = Int(try comm.allreduce(Int64(shard.featureDim), op: .max))
        shard.totalCount = ids.count
        return shard
    }
}
