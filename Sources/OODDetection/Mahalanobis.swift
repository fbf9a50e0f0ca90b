// Mahalanobis OOD score (Lee et al., "A Simple Unified Framework for Detecting Out-of-Distribution
// Samples and Adversarial Attacks", NeurIPS 2018, Eq. 1-2): class means and ONE shared ("tied")
// covariance of penultimate features on the ID training set, normalised by N and pooled over
// class-centred features; score = max over classes of the negative squared Mahalanobis distance.
//
// Fitting is two passes over the training features so that every statistic is a plain sum that
// ranks can add (in a fixed rank order, for reproducibility) before the next pass:
//   pass 1: ClassFeatureSums (per-class sums and counts)      -> class means
//   pass 2: CentredScatter (sum of (x - mu_y)(x - mu_y)^T, N)  -> shared covariance = scatter / N
// Never average per-rank covariances (pitfalls F6): add the sums, then divide once.
import Foundation

/// Errors from fitting a Mahalanobis detector.
public enum MahalanobisError: Error, Equatable, CustomStringConvertible {
    /// Class `classIndex` has no training sample, so its mean is undefined.
    case emptyClass(classIndex: Int, numClasses: Int)
    /// The shared covariance is not (numerically) positive definite: the Cholesky pivot at
    /// `index` was `pivot` (expected > 0 and finite).
    case notPositiveDefinite(index: Int, pivot: Double, featureDim: Int, count: Int64)

    public var description: String {
        switch self {
        case let .emptyClass(c, k):
            return "Mahalanobis fit: class \(c) of \(k) has 0 training samples (expected >= 1). "
                + "Hint: check the labels and numClasses of the fitting set."
        case let .notPositiveDefinite(i, p, d, n):
            return "Mahalanobis fit: shared covariance [\(d), \(d)] from \(n) samples is not positive "
                + "definite (Cholesky pivot \(i) = \(p), expected > 0). Hint: use more samples than "
                + "feature dimensions, drop constant features, or pass a ridge > 0 (added to the diagonal)."
        }
    }
}

/// Pass 1: per-class feature sums `[C, D]` and counts `[C]`, in Double / Int64.
public struct ClassFeatureSums: Sendable, Equatable {
    public let numClasses: Int
    public let featureDim: Int
    /// `[numClasses, featureDim]` row-major sums of features per class.
    public var sums: [Double]
    /// `[numClasses]` sample counts.
    public var counts: [Int64]

    public init(numClasses: Int, featureDim: Int) {
        precondition(numClasses > 0 && featureDim > 0, "numClasses \(numClasses) and featureDim \(featureDim) must be > 0")
        self.numClasses = numClasses
        self.featureDim = featureDim
        sums = [Double](repeating: 0, count: numClasses * featureDim)
        counts = [Int64](repeating: 0, count: numClasses)
    }

    /// Adds a batch. `features` is `[N, D]` row-major, `labels` is `[N]` with values in `0..<C`.
    public mutating func accumulate(features: [Float], labels: [Int]) {
        let d = featureDim
        precondition(features.count == labels.count * d,
                     "features.count \(features.count) != labels.count \(labels.count) * featureDim \(d) (expected [N, D])")
        let c = numClasses
        features.withUnsafeBufferPointer { x in
            sums.withUnsafeMutableBufferPointer { s in
                for (i, y) in labels.enumerated() {
                    precondition(y >= 0 && y < c, "label \(y) at index \(i) outside 0..<\(c)")
                    counts[y] += 1
                    for j in 0..<d { s[y * d + j] += Double(x[i * d + j]) }
                }
            }
        }
    }

    /// Elementwise sum with another rank's partial sums. Add ranks in a fixed order (0, 1, ...) for
    /// bitwise reproducibility.
    public mutating func add(_ other: ClassFeatureSums) {
        precondition(other.numClasses == numClasses && other.featureDim == featureDim,
                     "shape mismatch: [\(numClasses), \(featureDim)] vs [\(other.numClasses), \(other.featureDim)]")
        for i in sums.indices { sums[i] += other.sums[i] }
        for i in counts.indices { counts[i] += other.counts[i] }
    }

    /// Class means `[C, D]` = sums / counts.
    /// - Throws: `MahalanobisError.emptyClass` if a class has no sample.
    public func means() throws -> [Double] {
        var m = sums
        for c in 0..<numClasses {
            guard counts[c] > 0 else { throw MahalanobisError.emptyClass(classIndex: c, numClasses: numClasses) }
            let n = Double(counts[c])
            for j in 0..<featureDim { m[c * featureDim + j] /= n }
        }
        return m
    }

    /// Total sample count N.
    public var total: Int64 { counts.reduce(0, +) }
}

/// Pass 2: sum over samples of `(x - mu_y)(x - mu_y)^T`, a `[D, D]` matrix in Double, and N.
public struct CentredScatter: Sendable, Equatable {
    public let featureDim: Int
    /// `[featureDim, featureDim]` row-major (symmetric) scatter matrix.
    public var scatter: [Double]
    /// Number of samples accumulated.
    public var count: Int64 = 0

    public init(featureDim: Int) {
        precondition(featureDim > 0, "featureDim must be > 0, got \(featureDim)")
        self.featureDim = featureDim
        scatter = [Double](repeating: 0, count: featureDim * featureDim)
    }

    /// Adds a batch. `features` `[N, D]`, `labels` `[N]`, `classMeans` `[C, D]` (from pass 1).
    public mutating func accumulate(features: [Float], labels: [Int], classMeans: [Double]) {
        let d = featureDim
        precondition(features.count == labels.count * d,
                     "features.count \(features.count) != labels.count \(labels.count) * featureDim \(d) (expected [N, D])")
        precondition(classMeans.count % d == 0, "classMeans.count \(classMeans.count) is not a multiple of featureDim \(d)")
        let c = classMeans.count / d
        var centred = [Double](repeating: 0, count: d)
        features.withUnsafeBufferPointer { x in
            classMeans.withUnsafeBufferPointer { mu in
                scatter.withUnsafeMutableBufferPointer { s in
                    centred.withUnsafeMutableBufferPointer { v in
                        for (i, y) in labels.enumerated() {
                            precondition(y >= 0 && y < c, "label \(y) at index \(i) outside 0..<\(c)")
                            for j in 0..<d { v[j] = Double(x[i * d + j]) - mu[y * d + j] }
                            // upper triangle only; mirrored in `covariance()`.
                            for r in 0..<d {
                                let vr = v[r]
                                for q in r..<d { s[r * d + q] += vr * v[q] }
                            }
                        }
                    }
                }
            }
        }
        count += Int64(labels.count)
    }

    /// Elementwise sum with another rank's partial scatter (add ranks in a fixed order).
    public mutating func add(_ other: CentredScatter) {
        precondition(other.featureDim == featureDim, "featureDim mismatch: \(featureDim) vs \(other.featureDim)")
        for i in scatter.indices { scatter[i] += other.scatter[i] }
        count += other.count
    }

    /// The shared covariance `[D, D]` = scatter / N (biased, as sklearn's EmpiricalCovariance in
    /// Lee et al.'s code), symmetric.
    public func covariance() -> [Double] {
        precondition(count > 0, "covariance of 0 samples")
        let d = featureDim
        let n = Double(count)
        var cov = [Double](repeating: 0, count: d * d)
        for r in 0..<d {
            for q in r..<d {
                let v = scatter[r * d + q] / n
                cov[r * d + q] = v
                cov[q * d + r] = v
            }
        }
        return cov
    }
}

/// A fitted Mahalanobis detector: `score(x) = max_c -(x - mu_c)^T Sigma^-1 (x - mu_c)` (negative
/// SQUARED distance, Lee et al. 2018 Eq. 2; higher = more ID).
public struct MahalanobisDetector: Sendable {
    public let numClasses: Int
    public let featureDim: Int
    /// `[C, D]` class means.
    public let classMeans: [Double]
    /// `[D, D]` lower-triangular Cholesky factor L of the shared covariance (Sigma = L L^T).
    let lower: [Double]
    /// `[C, D]` whitened means L^-1 mu_c.
    let whitenedMeans: [Double]

    /// Fits from pass-1 and pass-2 statistics (already summed over ranks).
    /// - Parameter ridge: added to the covariance diagonal before factorising (0 by default).
    /// - Throws: `MahalanobisError.emptyClass`, `.notPositiveDefinite`.
    public init(classSums: ClassFeatureSums, scatter: CentredScatter, ridge: Double = 0) throws {
        precondition(classSums.featureDim == scatter.featureDim,
                     "featureDim mismatch: sums \(classSums.featureDim) vs scatter \(scatter.featureDim)")
        try self.init(classMeans: classSums.means(), covariance: scatter.covariance(),
                      featureDim: scatter.featureDim, count: scatter.count, ridge: ridge)
    }

    /// Fits from explicit class means `[C, D]` and a symmetric covariance `[D, D]`.
    /// - Throws: `MahalanobisError.notPositiveDefinite`.
    public init(classMeans: [Double], covariance: [Double], featureDim: Int, count: Int64 = 0,
                ridge: Double = 0) throws {
        let d = featureDim
        precondition(d > 0 && classMeans.count % d == 0 && !classMeans.isEmpty,
                     "classMeans.count \(classMeans.count) is not a positive multiple of featureDim \(d)")
        precondition(covariance.count == d * d, "covariance.count \(covariance.count) != \(d)*\(d)")
        self.featureDim = d
        self.numClasses = classMeans.count / d
        self.classMeans = classMeans
        var a = covariance
        for i in 0..<d { a[i * d + i] += ridge }
        lower = try Self.cholesky(a, d, count: count)
        var w = [Double](repeating: 0, count: classMeans.count)
        for c in 0..<numClasses {
            Self.forwardSolve(lower, d, Array(classMeans[(c * d)..<((c + 1) * d)]), into: &w, at: c * d)
        }
        whitenedMeans = w
    }

    /// Scores `[N]` for features `[N, D]` (Float or Double).
    public func scores(features: [Float]) -> [Double] { scoresGeneric(features) }

    /// Double-feature overload of `scores(features:)`.
    public func scores(features: [Double]) -> [Double] { scoresGeneric(features) }

    func scoresGeneric<T: BinaryFloatingPoint>(_ features: [T]) -> [Double] {
        let d = featureDim
        let k = numClasses
        precondition(features.count % d == 0, "features.count \(features.count) is not a multiple of featureDim \(d) (expected [N, D])")
        let n = features.count / d
        var out = [Double](repeating: 0, count: n)
        var z = [Double](repeating: 0, count: d)
        features.withUnsafeBufferPointer { f in
            lower.withUnsafeBufferPointer { l in
                whitenedMeans.withUnsafeBufferPointer { m in
                    z.withUnsafeMutableBufferPointer { zp in
                        for i in 0..<n {
                            // z = L^-1 x (forward substitution), then distances in whitened space.
                            for r in 0..<d {
                                var s = Double(f[i * d + r])
                                for q in 0..<r { s -= l[r * d + q] * zp[q] }
                                zp[r] = s / l[r * d + r]
                            }
                            var best = -Double.infinity
                            for c in 0..<k {
                                var dist = 0.0
                                for j in 0..<d {
                                    let t = zp[j] - m[c * d + j]
                                    dist += t * t
                                }
                                if dist.isNaN { best = .nan; break }  // never hide NaN features
                                if -dist > best { best = -dist }
                            }
                            out[i] = best
                        }
                    }
                }
            }
        }
        return out
    }

    /// Cholesky factor (lower, row-major) of a symmetric `[d, d]` matrix.
    static func cholesky(_ a: [Double], _ d: Int, count: Int64) throws -> [Double] {
        var l = [Double](repeating: 0, count: d * d)
        for j in 0..<d {
            var diag = a[j * d + j]
            for k in 0..<j { diag -= l[j * d + k] * l[j * d + k] }
            guard diag > 0 && diag.isFinite else {
                throw MahalanobisError.notPositiveDefinite(index: j, pivot: diag, featureDim: d, count: count)
            }
            let ljj = diag.squareRoot()
            l[j * d + j] = ljj
            for i in (j + 1)..<max(j + 1, d) {
                var s = a[i * d + j]
                for k in 0..<j { s -= l[i * d + k] * l[j * d + k] }
                l[i * d + j] = s / ljj
            }
        }
        return l
    }

    /// Solves L z = b (L lower-triangular `[d, d]`), writing z into `out[at..<at+d]`.
    static func forwardSolve(_ l: [Double], _ d: Int, _ b: [Double], into out: inout [Double], at offset: Int) {
        l.withUnsafeBufferPointer { lp in
            out.withUnsafeMutableBufferPointer { o in
                for i in 0..<d {
                    var s = b[i]
                    for k in 0..<i { s -= lp[i * d + k] * o[offset + k] }
                    o[offset + i] = s / lp[i * d + i]
                }
            }
        }
    }
}
