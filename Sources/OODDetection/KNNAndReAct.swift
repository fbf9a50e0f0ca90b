// Feature-space extras: KNN distance score and ReAct activation clipping.
import Foundation
import TensorCore

/// KNN OOD score (Sun et al., "Out-of-Distribution Detection with Deep Nearest Neighbors",
/// ICML 2022): features are L2-normalised (divided by `||x||_2 + 1e-10`, as in the authors' code),
/// and `score(x) = -(Euclidean distance from normalised x to its k-th nearest normalised training
/// feature)`; higher = more ID. For unit vectors the distance is sqrt(2 - 2 cos), so ranking by it
/// is ranking by cosine similarity.
///
/// Exact brute force in Double: squared distances `|q|^2 + |b|^2 - 2 q.b` with the dot products
/// from one OpenBLAS dgemm per block of queries (`[Q, D] x [N_train, D]^T`), clamped at 0, then
/// the k smallest per query. Against the direct sum of squared differences the distance differs by
/// about 1e-16 / distance (1e-8 at distance 0). Evaluation scores fixed batches of consecutive
/// ids, the same for any number of ranks, so the dgemm shapes and the scores are too.
public struct KNNDetector: Sendable {
    public let featureDim: Int
    public let k: Int
    /// `[N_train, D]` normalised training features.
    public let bank: [Double]
    /// `[N_train]` squared norms of the normalised training features.
    let bankSquaredNorms: [Double]

    /// - Parameters: trainingFeatures `[N_train, D]` row-major; `k` in 1...N_train.
    public init(trainingFeatures: [Float], featureDim: Int, k: Int) {
        precondition(featureDim > 0 && trainingFeatures.count % featureDim == 0,
                     "trainingFeatures.count \(trainingFeatures.count) is not a multiple of featureDim \(featureDim) (expected [N, D])")
        let n = trainingFeatures.count / featureDim
        precondition(k >= 1 && k <= n, "k must be in 1...\(n) (training set size), got \(k)")
        self.featureDim = featureDim
        self.k = k
        self.bank = KNNDetector.normalisedRows(trainingFeatures, featureDim)
        self.bankSquaredNorms = KNNDetector.squaredNorms(bank, featureDim)
    }

    /// Scores `[N]` for features `[N, D]`. A query with a non-finite feature scores NaN.
    public func scores(features: [Float]) -> [Double] {
        let d = featureDim
        precondition(features.count % d == 0, "features.count \(features.count) is not a multiple of featureDim \(d) (expected [N, D])")
        let queries = KNNDetector.normalisedRows(features, d)
        let queryNorms = KNNDetector.squaredNorms(queries, d)
        let nq = queries.count / d
        let nb = bank.count / d
        var out = [Double](repeating: 0, count: nq)
        var top = [Double](repeating: .infinity, count: k)  // ascending squared distances
        BankDots.forEachQuery(queries, bank: bank, featureDim: d) { i, row in
            let qq = queryNorms[i]
            if !qq.isFinite { out[i] = .nan; return }
            for t in 0..<k { top[t] = .infinity }
            for r in 0..<nb {
                let raw = qq + bankSquaredNorms[r] - 2 * row[r]
                if raw.isNaN { out[i] = .nan; return }  // before clamping: max(0, NaN) is 0
                let dist = raw < 0 ? 0 : raw
                if dist < top[k - 1] {
                    // insertion into the sorted k smallest
                    var p = k - 1
                    while p > 0 && top[p - 1] > dist { top[p] = top[p - 1]; p -= 1 }
                    top[p] = dist
                }
            }
            out[i] = -top[k - 1].squareRoot()
        }
        return out
    }

    /// `[N]` squared L2 norms of rows `[N, D]`.
    static func squaredNorms(_ x: [Double], _ d: Int) -> [Double] {
        (0..<(x.count / d)).map { i in
            var s = 0.0
            for j in 0..<d { s += x[i * d + j] * x[i * d + j] }
            return s
        }
    }

    /// Rows divided by (L2 norm + 1e-10), in Double.
    static func normalisedRows(_ x: [Float], _ d: Int) -> [Double] {
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

/// Dot products of every query row with every bank row (`[Q, D] x [N, D]^T`), one OpenBLAS
/// dgemm per block of queries so the block `[Q_block, N]` stays within about 8 MB: the search
/// behind KNN and NNGuide.
enum BankDots {
    static let blockElements = 1 << 20

    /// Calls `body(query index, its N dot products)` for every query, in order.
    static func forEachQuery(_ queries: [Double], bank: [Double], featureDim d: Int,
                             _ body: (_ query: Int, _ dots: UnsafePointer<Double>) -> Void) {
        let nq = queries.count / d, nb = bank.count / d
        guard nq > 0, nb > 0 else { return }
        let block = max(1, min(nq, blockElements / nb))
        var dots = [Double](repeating: 0, count: block * nb)
        queries.withUnsafeBufferPointer { q in
            bank.withUnsafeBufferPointer { b in
                dots.withUnsafeMutableBufferPointer { dp in
                    var start = 0
                    while start < nq {
                        let m = min(block, nq - start)
                        Kernels.dgemmABt(m: m, n: nb, k: d, alpha: 1, a: q.baseAddress! + start * d, b: b.baseAddress!, beta: 0,
                                         c: dp.baseAddress!)
                        for i in 0..<m { body(start + i, dp.baseAddress! + i * nb) }
                        start += m
                    }
                }
            }
        }
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
