// Feature-space extras: KNN distance score and ReAct activation clipping.
import Foundation

/// KNN OOD score (Sun et al., "Out-of-Distribution Detection with Deep Nearest Neighbors",
/// ICML 2022): features are L2-normalised (divided by `||x||_2 + 1e-10`, as in the authors' code),
/// and `score(x) = -(Euclidean distance from normalised x to its k-th nearest normalised training
/// feature)`; higher = more ID. For unit vectors the distance is sqrt(2 - 2 cos), so ranking by it
/// is ranking by cosine similarity. Brute force: O(N_train * D) per query, in Double.
public struct KNNDetector: Sendable {
    public let featureDim: Int
    public let k: Int
    /// `[N_train, D]` normalised training features.
    public let bank: [Double]

    /// - Parameters: trainingFeatures `[N_train, D]` row-major; `k` in 1...N_train.
    public init(trainingFeatures: [Float], featureDim: Int, k: Int) {
        precondition(featureDim > 0 && trainingFeatures.count % featureDim == 0,
                     "trainingFeatures.count \(trainingFeatures.count) is not a multiple of featureDim \(featureDim) (expected [N, D])")
        let n = trainingFeatures.count / featureDim
        precondition(k >= 1 && k <= n, "k must be in 1...\(n) (training set size), got \(k)")
        self.featureDim = featureDim
        self.k = k
        self.bank = KNNDetector.normalisedRows(trainingFeatures, featureDim)
    }

    /// Scores `[N]` for features `[N, D]`.
    public func scores(features: [Float]) -> [Double] {
        let d = featureDim
        precondition(features.count % d == 0, "features.count \(features.count) is not a multiple of featureDim \(d) (expected [N, D])")
        let queries = KNNDetector.normalisedRows(features, d)
        let nq = queries.count / d
        let nb = bank.count / d
        var out = [Double](repeating: 0, count: nq)
        var nearest = [Double](repeating: .infinity, count: k)  // ascending squared distances
        queries.withUnsafeBufferPointer { q in
            bank.withUnsafeBufferPointer { b in
                nearest.withUnsafeMutableBufferPointer { top in
                    for i in 0..<nq {
                        for t in 0..<k { top[t] = .infinity }
                        var sawNaN = false
                        for r in 0..<nb {
                            var dist = 0.0
                            for j in 0..<d {
                                let diff = q[i * d + j] - b[r * d + j]
                                dist += diff * diff
                            }
                            if dist.isNaN { sawNaN = true; break }
                            if dist < top[k - 1] {
                                // insertion into the sorted k smallest
                                var p = k - 1
                                while p > 0 && top[p - 1] > dist { top[p] = top[p - 1]; p -= 1 }
                                top[p] = dist
                            }
                        }
                        out[i] = sawNaN ? .nan : -top[k - 1].squareRoot()
                    }
                }
            }
        }
        return out
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
