// Feature-space extras: KNN distance score and ReAct activation clipping.
import Foundation
import TensorCore

/// KNN OOD score (Sun et al., "Out-of-Distribution Detection with Deep Nearest Neighbors",
/// ICML 2022): features are L2-normalised (divided by `||x||_2 + 1e-10`, as in the authors' code),
/// and `score(x) = -(Euclidean distance from normalised x to its k-th nearest normalised training
/// feature)`; higher = more ID. For unit vectors the distance is sqrt(2 - 2 cos), so ranking by it
/// is ranking by cosine similarity.
///
/// Exact search in Double (``BankSearch``): dgemm pre-selects candidates, and the k-th distance
/// is recomputed as `sum_j (q_j - b_j)^2` in a fixed order, so the score does not depend on how
/// the bank is split across ranks. The bank may be one rank's shard: ``scores(features:combine:)``
/// then takes the collective that merges the shards' top-k lists.
public struct KNNDetector: Sendable {
    public let featureDim: Int
    public let k: Int
    /// This rank's normalised training features and their ids.
    public let bank: FeatureBank

    /// The whole bank on this process: trainingFeatures `[N_train, D]` row-major (ids 0..<N);
    /// `k` in 1...N_train.
    public init(trainingFeatures: [Float], featureDim: Int, k: Int) {
        precondition(featureDim > 0 && trainingFeatures.count % featureDim == 0,
                     "trainingFeatures.count \(trainingFeatures.count) is not a multiple of featureDim \(featureDim) (expected [N, D])")
        let n = trainingFeatures.count / featureDim
        precondition(k >= 1 && k <= n, "k must be in 1...\(n) (training set size), got \(k)")
        self.init(bank: KNNDetector.bank(features: trainingFeatures, ids: (0..<Int64(n)).map { $0 }, featureDim: featureDim), k: k)
    }

    /// One shard of the bank (prepared by ``bank(features:ids:featureDim:)``); k >= 1 and at most
    /// the size of the whole bank (the caller checks it).
    public init(bank: FeatureBank, k: Int) {
        precondition(k >= 1, "k must be >= 1, got \(k)")
        self.featureDim = bank.featureDim
        self.k = k
        self.bank = bank
    }

    /// The KNN bank of training features `[n, D]` with their ids: rows L2-normalised in Double.
    public static func bank(features: [Float], ids: [Int64], featureDim: Int) -> FeatureBank {
        FeatureBank(rows: normalisedRows(features, featureDim), ids: ids, featureDim: featureDim)
    }

    /// Scores `[N]` for features `[N, D]`, processed in chunks of ``BankSearch/queryChunk``
    /// queries. `combine` turns this bank's top-k lists into the global ones (identity for a whole
    /// bank; an allgather and ``BankSearch/merge(_:metric:)`` for a shard, called once per chunk,
    /// so every rank must pass the same queries). A query with a non-finite feature scores NaN.
    public func scores(features: [Float]) -> [Double] { scores(features: features) { $0 } }

    /// The global top-k lists of a whole bank (no merge), per chunk of queries.
    public func topK(features: [Float]) -> [TopK] { topK(features: features) { $0 } }

    public func scores(features: [Float], combine: (TopK) throws -> TopK) rethrows -> [Double] {
        try topK(features: features, combine: combine).map { t in
            (0..<t.queryCount).map { i in t.invalid[i] ? .nan : -t.values[i * k + k - 1].squareRoot() }
        }.flatMap { $0 }
    }

    /// The global top-k lists per chunk of queries (see ``scores(features:combine:)``).
    public func topK(features: [Float], combine: (TopK) throws -> TopK) rethrows -> [TopK] {
        let d = featureDim
        precondition(features.count % d == 0, "features.count \(features.count) is not a multiple of featureDim \(d) (expected [N, D])")
        var out: [TopK] = []
        var start = 0
        let nq = features.count / d
        repeat {
            let m = min(BankSearch.queryChunk, nq - start)
            let queries = KNNDetector.normalisedRows(Array(features[(start * d)..<((start + m) * d)]), d)
            out.append(try combine(BankSearch.search(queries: queries, bank: bank, k: k, metric: .squaredDistance)))
            start += m
        } while start < nq
        return out
    }

    /// Rows divided by (L2 norm + 1e-10), in Double.
    public static func normalisedRows(_ x: [Float], _ d: Int) -> [Double] {
        let n = x.count / d
        var out = [Double](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    var sq = 0.0
                    for j in 0..<d { let v = Double(src[i * d + j]); sq += v * v }
                    let scale = 1.0 / (sq.squareRoot() + 1e-10)
                    for j in 0..<d { dst[i * d + j] = Double(src[i * d + j]) * scale }
                }
            }
        }
        return out
    }
}

/// ReAct (Sun, Guo & Li, "ReAct: Out-of-distribution Detection With Rectified Activations",
/// NeurIPS 2021): clip penultimate activations at a threshold c (the p-th percentile of ID
/// training activations, p = 90 in the paper) before the last linear layer, then score as usual.
public enum ReAct {
    /// The `percentile`-th percentile (0...100) of `activations` (all entries flattened), with
    /// numpy.percentile's default linear interpolation: sorted a, position h = p/100 * (n - 1),
    /// value a[floor h] + (h - floor h) * (a[floor h + 1] - a[floor h]).
    /// Precondition: non-empty, all finite.
    public static func percentileThreshold(activations: [Float], percentile: Double) -> Double {
        precondition(!activations.isEmpty, "percentileThreshold of an empty activation set")
        precondition(percentile >= 0 && percentile <= 100, "percentile must be in 0...100, got \(percentile)")
        precondition(activations.allSatisfy(\.isFinite), "activations must be finite")
        let a = activations.map(Double.init).sorted()
        let h = percentile / 100 * Double(a.count - 1)
        let lo = Int(h.rounded(.down))
        let hi = min(lo + 1, a.count - 1)
        return a[lo] + (h - Double(lo)) * (a[hi] - a[lo])
    }

    /// Clips in place: `x = min(x, threshold)` for every entry (shape unchanged, e.g. `[N, D]`).
    /// NaN entries stay NaN.
    public static func clip(_ activations: inout [Float], threshold: Double) {
        let c = Float(threshold)
        activations.withUnsafeMutableBufferPointer { a in
            for i in 0..<a.count where a[i] > c { a[i] = c }
        }
    }
}
