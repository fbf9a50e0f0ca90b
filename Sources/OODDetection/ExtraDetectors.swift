// Post-hoc detectors beyond the classic ones (issue 18, first part): GEN, fDBD, ASH (-P, -B, -S),
// SCALE and RMDS, each from its paper's formula. Every score is oriented higher = more
// in-distribution and computed in Double. Tests: DetectorFixtureTests against the numpy twins in
// Tests/Fixtures/detectors/make_fixture.py.
import Foundation

/// A linear classifier head `logits = W z + b` (`W [K, D]`, `b [K]`), in Double: the last layer of
/// the model, for the scores that reshape the penultimate features and read the logits again.
public struct LinearHead: Sendable, Equatable {
    public let numClasses: Int
    public let featureDim: Int
    /// `[K, D]` row-major.
    public let weight: [Double]
    /// `[K]`.
    public let bias: [Double]

    public init(weight: [Double], bias: [Double]) {
        precondition(!bias.isEmpty && weight.count % bias.count == 0 && !weight.isEmpty,
                     "weight.count \(weight.count) is not a positive multiple of the class count \(bias.count) (expected [K, D])")
        self.numClasses = bias.count
        self.featureDim = weight.count / bias.count
        self.weight = weight
        self.bias = bias
    }

    /// Logits `[K]` of one feature vector `[D]`.
    public func logits(_ z: UnsafeBufferPointer<Double>) -> [Double] {
        (0..<numClasses).map { k in
            var s = bias[k]
            for j in 0..<featureDim { s += weight[k * featureDim + j] * z[j] }
            return s
        }
    }

    /// Energy `log sum_k exp(l_k)` (T = 1) of one feature vector.
    public func energy(_ z: UnsafeBufferPointer<Double>) -> Double { LinearHead.logSumExp(logits(z)) }

    static func logSumExp(_ l: [Double]) -> Double {
        guard let m = l.max(), m.isFinite else { return l.contains { $0.isNaN } ? .nan : (l.max() ?? .nan) }
        return m + log(l.reduce(0) { $0 + exp($1 - m) })
    }
}

/// GEN, the generalised entropy of the softmax (Liu, Lochman & Zach, CVPR 2023, Eq. 4):
/// `score = -sum_{j=1}^{M} p_j^gamma (1 - p_j)^gamma` over the M largest probabilities
/// (M capped at the class count); higher = more ID. OpenOOD's defaults: gamma 0.1, M 100.
public enum GEN {
    /// Scores `[N]` for logits `[N, K]`.
    public static func scores(logits: [Double], numClasses k: Int, gamma: Double, m: Int) -> [Double] {
        precondition(k > 0 && logits.count % k == 0, "logits.count \(logits.count) is not a multiple of \(k) (expected [N, K])")
        precondition(gamma > 0 && m >= 1, "GEN needs gamma > 0 and M >= 1, got \(gamma), \(m)")
        let top = min(m, k)
        return (0..<(logits.count / k)).map { i in
            let row = logits[(i * k)..<((i + 1) * k)]
            guard let mx = row.max(), !row.contains(where: \.isNaN) else { return .nan }
            let e = row.map { exp($0 - mx) }
            let s = e.reduce(0, +)
            let p = e.map { $0 / s }.sorted(by: >)
            return -p.prefix(top).reduce(0) { $0 + pow($1, gamma) * pow(1 - $1, gamma) }
        }
    }

    /// Float-logit overload.
    public static func scores(logits: [Float], numClasses k: Int, gamma: Double, m: Int) -> [Double] {
        scores(logits: logits.map(Double.init), numClasses: k, gamma: gamma, m: m)
    }
}

/// fDBD, feature distance to the decision boundaries (Liu & Qin, ICML 2024, Eq. 5): with the
/// predicted class c, the mean over j != c of the distance from z to the boundary between c and j,
/// `(l_c - l_j) / ||w_c - w_j||`, divided by `||z - mu||` (mu = the mean training feature); higher
/// = more ID. Ties in the prediction take the first maximum.
public struct FDBDDetector: Sendable {
    public let head: LinearHead
    /// `[D]` mean of the training features.
    public let trainMean: [Double]
    /// `[K, K]` `||w_c - w_j||`.
    let boundaryNorms: [Double]

    public init(head: LinearHead, trainMean: [Double]) {
        precondition(trainMean.count == head.featureDim, "trainMean has \(trainMean.count) values, expected \(head.featureDim)")
        self.head = head
        self.trainMean = trainMean
        let k = head.numClasses, d = head.featureDim
        var norms = [Double](repeating: 0, count: k * k)
        for a in 0..<k {
            for c in 0..<k {
                var s = 0.0
                for j in 0..<d { let t = head.weight[a * d + j] - head.weight[c * d + j]; s += t * t }
                norms[a * k + c] = s.squareRoot()
            }
        }
        boundaryNorms = norms
    }

    /// Scores `[N]` for features `[N, D]`.
    public func scores(features: [Double]) -> [Double] {
        let d = head.featureDim, k = head.numClasses
        precondition(features.count % d == 0, "features.count \(features.count) is not a multiple of \(d) (expected [N, D])")
        return features.withUnsafeBufferPointer { f in
            (0..<(features.count / d)).map { i in
                let z = UnsafeBufferPointer(rebasing: f[(i * d)..<((i + 1) * d)])
                let l = head.logits(z)
                if l.contains(where: \.isNaN) { return .nan }
                var c = 0
                for j in 1..<k where l[j] > l[c] { c = j }
                var sum = 0.0
                for j in 0..<k where j != c { sum += (l[c] - l[j]) / boundaryNorms[c * k + j] }
                var dist = 0.0
                for j in 0..<d { let t = z[j] - trainMean[j]; dist += t * t }
                return sum / Double(max(k - 1, 1)) / dist.squareRoot()
            }
        }
    }

    /// Float-feature overload.
    public func scores(features: [Float]) -> [Double] { scores(features: features.map(Double.init)) }
}

/// Activation shaping of the pooled penultimate features, then the energy of the head's logits:
/// ASH (Djurisic et al., ICLR 2023, Sec. 3) and SCALE (Xu et al., ICLR 2024, Eq. 4). Each sample
/// keeps its k = n - round(n p / 100) largest entries (at least one; ties to the lower index),
/// p the percentile (OpenOOD searches 65-95):
/// - ASH-P: the others set to 0;
/// - ASH-B: the kept entries set to (sum before pruning) / k, the others 0;
/// - ASH-S: the kept entries multiplied by exp(sum before / sum kept), the others 0;
/// - SCALE: every entry multiplied by exp(sum / sum kept), nothing pruned.
/// A sample whose kept entries sum to 0 is not rescaled (factor 1). Higher = more ID.
public enum ActivationShaping: String, Sendable, CaseIterable {
    case ashP = "ash_p", ashB = "ash_b", ashS = "ash_s", scale

    /// Energy scores `[N]` of features `[N, D]` shaped at `percentile`.
    public func scores(features: [Double], head: LinearHead, percentile: Double) -> [Double] {
        let d = head.featureDim
        precondition(features.count % d == 0, "features.count \(features.count) is not a multiple of \(d) (expected [N, D])")
        precondition(percentile >= 0 && percentile < 100, "percentile must be in [0, 100), got \(percentile)")
        let k = Swift.max(1, d - Int((Double(d) * percentile / 100).rounded(.toNearestOrAwayFromZero)))
        var shaped = [Double](repeating: 0, count: d)
        return (0..<(features.count / d)).map { i in
            let z = Array(features[(i * d)..<((i + 1) * d)])
            if z.contains(where: \.isNaN) { return .nan }
            let order = (0..<d).sorted { z[$0] != z[$1] ? z[$0] > z[$1] : $0 < $1 }
            var kept = [Bool](repeating: false, count: d)
            for j in order.prefix(k) { kept[j] = true }
            let total = z.reduce(0, +)
            let keptSum = (0..<d).reduce(0.0) { kept[$1] ? $0 + z[$1] : $0 }
            let factor = keptSum > 0 ? exp(total / keptSum) : 1
            for j in 0..<d {
                switch self {
                case .ashP: shaped[j] = kept[j] ? z[j] : 0
                case .ashB: shaped[j] = kept[j] ? total / Double(k) : 0
                case .ashS: shaped[j] = kept[j] ? z[j] * factor : 0
                case .scale: shaped[j] = z[j] * factor
                }
            }
            return shaped.withUnsafeBufferPointer { head.energy($0) }
        }
    }

    /// Float-feature overload.
    public func scores(features: [Float], head: LinearHead, percentile: Double) -> [Double] {
        scores(features: features.map(Double.init), head: head, percentile: percentile)
    }
}

/// RMDS, the relative Mahalanobis distance (Ren et al., 2021, Eq. 3-4):
/// `score = -min_k [MD_k(z) - MD_0(z)]`, MD_k the squared Mahalanobis distance to class k under
/// the shared class-centred covariance (as ``MahalanobisDetector``), MD_0 the squared distance to
/// the "background" Gaussian of all training features (their mean and covariance); higher = more
/// ID.
public struct RMDSDetector: Sendable {
    public let classes: MahalanobisDetector
    public let background: MahalanobisDetector

    /// - Parameters: classSums / scatter as for ``MahalanobisDetector``; `mean [D]` and
    ///   `covariance [D, D]` of all training features (biased, divided by N).
    /// - Throws: ``MahalanobisError`` for an empty class or a covariance that is not positive definite.
    public init(classSums: ClassFeatureSums, scatter: CentredScatter, mean: [Double], covariance: [Double], ridge: Double = 0) throws {
        classes = try MahalanobisDetector(classSums: classSums, scatter: scatter, ridge: ridge)
        background = try MahalanobisDetector(classMeans: mean, covariance: covariance, featureDim: scatter.featureDim,
                                             count: scatter.count, ridge: ridge)
    }

    /// Scores `[N]` for features `[N, D]`: the class score (-min_k MD_k) minus the background's (-MD_0).
    public func scores(features: [Double]) -> [Double] {
        zip(classes.scores(features: features), background.scores(features: features)).map { $0 - $1 }
    }

    /// Float-feature overload.
    public func scores(features: [Float]) -> [Double] { scores(features: features.map(Double.init)) }

    /// The mean `[D]` and biased covariance `[D, D]` of features `[N, D]`, summed in Double in row order.
    public static func backgroundGaussian(features: [Float], featureDim d: Int) -> (mean: [Double], covariance: [Double]) {
        let n = features.count / d
        var mean = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += Double(features[i * d + j]) } }
        for j in 0..<d { mean[j] /= Double(max(n, 1)) }
        var cov = [Double](repeating: 0, count: d * d)
        for i in 0..<n {
            for a in 0..<d {
                let xa = Double(features[i * d + a]) - mean[a]
                for b in 0..<d { cov[a * d + b] += xa * (Double(features[i * d + b]) - mean[b]) }
            }
        }
        for j in 0..<(d * d) { cov[j] /= Double(max(n, 1)) }
        return (mean, cov)
    }
}
