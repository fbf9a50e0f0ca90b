// Post-hoc detectors beyond the classic ones (issue 18, first part): GEN, fDBD, ASH (-P, -B, -S),
// SCALE, RMDS, NNGuide and ViM, each from its paper's formula. Every score is oriented higher = more
// in-distribution and computed in Double. Tests: DetectorFixtureTests against the numpy twins in
// Tests/Fixtures/detectors/make_fixture.py.
import Foundation
import TensorCore

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

    /// From fitted class Gaussians (shared with the Mahalanobis score) and the background mean
    /// `[D]` and covariance `[D, D]`.
    /// - Throws: ``MahalanobisError/notPositiveDefinite``.
    public init(classes: MahalanobisDetector, backgroundMean: [Double], backgroundCovariance: [Double], ridge: Double = 0) throws {
        self.classes = classes
        background = try MahalanobisDetector(classMeans: backgroundMean, covariance: backgroundCovariance, featureDim: classes.featureDim,
                                             ridge: ridge)
    }

    /// From stored statistics: class means `[C, D]` and their shared covariance, the background
    /// mean `[D]` and covariance `[D, D]`.
    /// - Throws: ``MahalanobisError/notPositiveDefinite``.
    public init(classMeans: [Double], covariance: [Double], backgroundMean: [Double], backgroundCovariance: [Double], featureDim: Int,
                ridge: Double = 0) throws {
        classes = try MahalanobisDetector(classMeans: classMeans, covariance: covariance, featureDim: featureDim, ridge: ridge)
        background = try MahalanobisDetector(classMeans: backgroundMean, covariance: backgroundCovariance, featureDim: featureDim, ridge: ridge)
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
        accumulateSum(&mean, features: features, featureDim: d)
        for j in 0..<d { mean[j] /= Double(max(n, 1)) }
        var cov = [Double](repeating: 0, count: d * d)
        accumulateScatter(&cov, features: features, featureDim: d, mean: mean)
        for j in 0..<(d * d) { cov[j] /= Double(max(n, 1)) }
        return (mean, cov)
    }

    /// Adds the rows of `features [N, D]` to `sum [D]`, in row order.
    public static func accumulateSum(_ sum: inout [Double], features: [Float], featureDim d: Int) {
        for i in 0..<(features.count / d) { for j in 0..<d { sum[j] += Double(features[i * d + j]) } }
    }

    /// Adds `(x - mean)(x - mean)^T` of each row of `features [N, D]` to `scatter [D, D]`, in row order.
    public static func accumulateScatter(_ cov: inout [Double], features: [Float], featureDim d: Int, mean: [Double]) {
        for i in 0..<(features.count / d) {
            for a in 0..<d {
                let xa = Double(features[i * d + a]) - mean[a]
                for b in 0..<d { cov[a * d + b] += xa * (Double(features[i * d + b]) - mean[b]) }
            }
        }
    }
}

/// NNGuide, nearest-neighbour guidance (Park, Jung & Teoh, ICCV 2023, Eq. 3-5): the bank holds
/// each training feature, L2-normalised (divided by `||z|| + 1e-10`) and multiplied by that
/// sample's energy; a query's guidance is the mean of its k largest dot products with the bank
/// (its normalised feature against each entry), and `score = energy(query) * guidance`; higher =
/// more ID. The k largest come from the exact ``BankSearch`` (OpenOOD's defaults: k = 100 over a
/// 1% subset of the training set; the caller chooses the bank), so the bank may be split across
/// ranks, with the shards' lists merged by the `combine` collective.
public struct NNGuideDetector: Sendable {
    public let head: LinearHead
    public let k: Int
    /// This rank's `[n, D]` normalised training features times their energies, with their ids.
    public let bank: FeatureBank

    /// From a prepared bank or shard (``bank(features:ids:head:)``); k >= 1 and at most the size
    /// of the whole bank (the caller checks it).
    public init(bank: FeatureBank, head: LinearHead, k: Int) {
        precondition(bank.featureDim == head.featureDim && k >= 1, "NNGuide bank of D = \(bank.featureDim) with k \(k) does not fit D = \(head.featureDim)")
        self.head = head
        self.k = k
        self.bank = bank
    }

    /// The whole bank on this process: bankFeatures `[N_bank, D]` (ids 0..<N); k in 1...N_bank.
    public init(bankFeatures: [Double], head: LinearHead, k: Int) {
        let d = head.featureDim
        precondition(bankFeatures.count % d == 0 && !bankFeatures.isEmpty, "bankFeatures.count \(bankFeatures.count) is not a positive multiple of \(d)")
        let n = bankFeatures.count / d
        precondition(k >= 1 && k <= n, "k must be in 1...\(n) (bank size), got \(k)")
        self.init(bank: Self.bank(features: bankFeatures, ids: (0..<Int64(n)).map { $0 }, head: head), head: head, k: k)
    }

    /// The NNGuide bank rows of training features `[n, D]` with their ids: each normalised, times its energy.
    public static func bank(features: [Double], ids: [Int64], head: LinearHead) -> FeatureBank {
        let d = head.featureDim
        var b = normalised(features, d)
        features.withUnsafeBufferPointer { f in
            for i in 0..<(features.count / d) {
                let e = head.energy(UnsafeBufferPointer(rebasing: f[(i * d)..<((i + 1) * d)]))
                for j in 0..<d { b[i * d + j] *= e }
            }
        }
        return FeatureBank(rows: b, ids: ids, featureDim: d)
    }

    static func normalised(_ x: [Double], _ d: Int) -> [Double] {
        var out = x
        for i in 0..<(x.count / d) {
            var sq = 0.0
            for j in 0..<d { sq += x[i * d + j] * x[i * d + j] }
            let scale = 1 / (sq.squareRoot() + 1e-10)
            for j in 0..<d { out[i * d + j] *= scale }
        }
        return out
    }

    /// Scores `[N]` for features `[N, D]`, in chunks of ``BankSearch/queryChunk`` queries;
    /// `combine` as for ``KNNDetector/scores(features:combine:)``.
    public func scores(features: [Double]) -> [Double] { scores(features: features) { $0 } }

    public func scores(features: [Double], combine: (TopK) throws -> TopK) rethrows -> [Double] {
        let d = head.featureDim
        precondition(features.count % d == 0, "features.count \(features.count) is not a multiple of \(d) (expected [N, D])")
        let nq = features.count / d
        var out: [Double] = []
        out.reserveCapacity(nq)
        var start = 0
        repeat {
            let m = min(BankSearch.queryChunk, nq - start)
            let chunk = Array(features[(start * d)..<((start + m) * d)])
            let top = try combine(BankSearch.search(queries: Self.normalised(chunk, d), bank: bank, k: k, metric: .dot))
            chunk.withUnsafeBufferPointer { f in
                for i in 0..<m {
                    if top.invalid[i] { out.append(.nan); continue }
                    var sum = 0.0
                    for t in 0..<k { sum += top.values[i * k + t] }
                    out.append(head.energy(UnsafeBufferPointer(rebasing: f[(i * d)..<((i + 1) * d)])) * (sum / Double(k)))
                }
            }
            start += m
        } while start < nq
        return out
    }
}

/// ViM, virtual-logit matching (Wang, Li, Feng & Zhang, CVPR 2022, Sec. 3): features are taken
/// relative to the origin `u = -pinv(W) b` (the least-norm point where every logit is 0; pinv by
/// `W^T (W W^T)^-1`, W of full row rank); the principal subspace is spanned by the `dim` leading
/// eigenvectors of `X'^T X' / N` over the centred training features X'; the virtual logit is
/// `alpha * ||residual||` (the norm of the part outside that subspace) with
/// `alpha = mean max training logit / mean training residual norm`; and
/// `score = logsumexp(logits) - virtual logit` (the negated log-odds of the virtual class; higher
/// = more ID). The paper takes dim = 1000 for D >= 2048, 512 for D = 768, D / 2 otherwise.
public struct ViMDetector: Sendable {
    public let head: LinearHead
    public let dim: Int
    /// `[D]` the origin u.
    public let origin: [Double]
    /// `[D - dim, D]` the residual subspace's orthonormal basis (rows).
    public let residualBasis: [Double]
    public let alpha: Double

    /// From stored state: the origin `[D]`, the residual basis `[R, D]` and alpha.
    public init(head: LinearHead, dim: Int, origin: [Double], residualBasis: [Double], alpha: Double) {
        precondition(origin.count == head.featureDim && residualBasis.count % head.featureDim == 0, "ViM state does not fit D = \(head.featureDim)")
        self.head = head
        self.dim = dim
        self.origin = origin
        self.residualBasis = residualBasis
        self.alpha = alpha
    }

    /// - Throws: ``MahalanobisError/notPositiveDefinite`` when W W^T is singular.
    public init(trainFeatures: [Double], head: LinearHead, dim: Int) throws {
        let d = head.featureDim
        precondition(dim >= 1 && dim < d, "ViM dim must be in 1..<\(d), got \(dim)")
        precondition(trainFeatures.count % d == 0 && !trainFeatures.isEmpty, "trainFeatures.count \(trainFeatures.count) is not a positive multiple of \(d)")
        let u = try Self.origin(head: head)
        let n = trainFeatures.count / d
        var m = [Double](repeating: 0, count: d * d)
        Self.accumulateMoment(&m, features: trainFeatures, origin: u)
        for j in 0..<(d * d) { m[j] /= Double(n) }
        let basis = Self.residualBasis(moment: m, featureDim: d, dim: dim)
        var sums = [0.0, 0.0]
        Self.accumulateAlpha(&sums, features: trainFeatures, head: head, origin: u, basis: basis)
        self.init(head: head, dim: dim, origin: u, residualBasis: basis, alpha: (sums[0] / Double(n)) / (sums[1] / Double(n)))
    }

    /// The origin `u = -W^T (W W^T)^-1 b` `[D]`.
    /// - Throws: ``MahalanobisError/notPositiveDefinite`` when W W^T is singular.
    public static func origin(head: LinearHead) throws -> [Double] {
        let d = head.featureDim, k = head.numClasses
        var gram = [Double](repeating: 0, count: k * k)
        for a in 0..<k { for c in 0..<k { for j in 0..<d { gram[a * k + c] += head.weight[a * d + j] * head.weight[c * d + j] } } }
        let l = try MahalanobisDetector.cholesky(gram, k, count: Int64(k))
        var y = [Double](repeating: 0, count: k)
        MahalanobisDetector.forwardSolve(l, k, head.bias, into: &y, at: 0)
        var v = [Double](repeating: 0, count: k)  // L^T v = y
        for r in stride(from: k - 1, through: 0, by: -1) {
            var s = y[r]
            for q in (r + 1)..<k { s -= l[q * k + r] * v[q] }
            v[r] = s / l[r * k + r]
        }
        var u = [Double](repeating: 0, count: d)
        for j in 0..<d { for a in 0..<k { u[j] -= head.weight[a * d + j] * v[a] } }
        return u
    }

    /// Adds `(x - u)(x - u)^T` of each row of `features [N, D]` to `moment [D, D]`, in row order.
    public static func accumulateMoment(_ m: inout [Double], features: [Double], origin u: [Double]) {
        let d = u.count
        for i in 0..<(features.count / d) {
            for a in 0..<d {
                let xa = features[i * d + a] - u[a]
                for c in 0..<d { m[a * d + c] += xa * (features[i * d + c] - u[c]) }
            }
        }
    }

    /// The residual basis `[D - dim, D]`: the eigenvectors of `moment` (already divided by N)
    /// after the `dim` leading ones (ties by index).
    public static func residualBasis(moment m: [Double], featureDim d: Int, dim: Int) -> [Double] {
        let (values, vectors) = SymmetricEigen.decompose(m, d)
        let order = (0..<d).sorted { values[$0] != values[$1] ? values[$0] > values[$1] : $0 < $1 }
        var basis: [Double] = []
        for e in order[dim...] { for j in 0..<d { basis.append(vectors[j * d + e]) } }
        return basis
    }

    /// Adds each row's max logit to `sums[0]` and its residual norm to `sums[1]`, in row order
    /// (alpha = sums[0] / sums[1] over the training set).
    public static func accumulateAlpha(_ sums: inout [Double], features: [Double], head: LinearHead, origin u: [Double], basis: [Double]) {
        let d = head.featureDim
        features.withUnsafeBufferPointer { f in
            for i in 0..<(features.count / d) {
                let z = UnsafeBufferPointer(rebasing: f[(i * d)..<((i + 1) * d)])
                sums[0] += head.logits(z).max()!
                sums[1] += residualNorm(z, origin: u, basis: basis, d: d)
            }
        }
    }

    static func residualNorm(_ z: UnsafeBufferPointer<Double>, origin: [Double], basis: [Double], d: Int) -> Double {
        var sq = 0.0
        for r in 0..<(basis.count / d) {
            var dot = 0.0
            for j in 0..<d { dot += (z[j] - origin[j]) * basis[r * d + j] }
            sq += dot * dot
        }
        return sq.squareRoot()
    }

    /// Scores `[N]` for features `[N, D]`.
    public func scores(features: [Double]) -> [Double] {
        let d = head.featureDim
        precondition(features.count % d == 0, "features.count \(features.count) is not a multiple of \(d) (expected [N, D])")
        return features.withUnsafeBufferPointer { f in
            (0..<(features.count / d)).map { i in
                let z = UnsafeBufferPointer(rebasing: f[(i * d)..<((i + 1) * d)])
                return head.energy(z) - alpha * Self.residualNorm(z, origin: origin, basis: residualBasis, d: d)
            }
        }
    }
}

/// Eigen-decomposition of a symmetric matrix by the cyclic Jacobi method (Golub & Van Loan,
/// Matrix Computations, 4th ed., Alg. 8.5.3), in Double: accurate to about machine precision in
/// the eigenvalues, O(D^3) per sweep (fine for penultimate widths in the hundreds).
public enum SymmetricEigen {
    /// Eigenvalues `[D]` and eigenvectors `[D, D]` (column e is the eigenvector of value e) of the
    /// symmetric `a [D, D]`, unsorted.
    public static func decompose(_ a: [Double], _ d: Int) -> (values: [Double], vectors: [Double]) {
        precondition(a.count == d * d, "a.count \(a.count) != \(d)*\(d)")
        var m = a
        var v = [Double](repeating: 0, count: d * d)
        for i in 0..<d { v[i * d + i] = 1 }
        for _ in 0..<100 {
            var off = 0.0
            for p in 0..<d { for q in (p + 1)..<max(p + 1, d) { off += m[p * d + q] * m[p * d + q] } }
            if off == 0 || off < 1e-30 * max(1, (0..<d).reduce(0.0) { $0 + m[$1 * d + $1] * m[$1 * d + $1] }) { break }
            for p in 0..<(d - 1) {
                for q in (p + 1)..<d {
                    let apq = m[p * d + q]
                    if apq == 0 { continue }
                    let theta = (m[q * d + q] - m[p * d + p]) / (2 * apq)
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for r in 0..<d {  // columns p, q of m
                        let mrp = m[r * d + p], mrq = m[r * d + q]
                        m[r * d + p] = c * mrp - s * mrq
                        m[r * d + q] = s * mrp + c * mrq
                    }
                    for r in 0..<d {  // rows p, q of m
                        let mpr = m[p * d + r], mqr = m[q * d + r]
                        m[p * d + r] = c * mpr - s * mqr
                        m[q * d + r] = s * mpr + c * mqr
                    }
                    for r in 0..<d {
                        let vrp = v[r * d + p], vrq = v[r * d + q]
                        v[r * d + p] = c * vrp - s * vrq
                        v[r * d + q] = s * vrp + c * vrq
                    }
                }
            }
        }
        return ((0..<d).map { m[$0 * d + $0] }, v)
    }
}
