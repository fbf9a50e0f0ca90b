import Foundation

/// Student's t distribution: the quantiles behind the paired intervals over seeds.
public enum StudentT {
    /// The CDF at `t` with `df` degrees of freedom: `1 - I_x(df/2, 1/2) / 2` for t >= 0 with
    /// `x = df / (df + t^2)` (Abramowitz & Stegun 26.7.1), by symmetry below 0.
    public static func cdf(_ t: Double, df: Double) -> Double {
        precondition(df > 0, "degrees of freedom must be > 0, got \(df)")
        if t.isNaN { return .nan }
        if t.isInfinite { return t > 0 ? 1 : 0 }
        let tail = 0.5 * regularizedIncompleteBeta(x: df / (df + t * t), a: df / 2, b: 0.5)
        return t >= 0 ? 1 - tail : tail
    }

    /// The `p`-quantile (inverse CDF) with `df` degrees of freedom, by bisection on the CDF to
    /// full Double resolution (about 1e-15 relative). Precondition: 0 < p < 1, df > 0.
    public static func quantile(_ p: Double, df: Double) -> Double {
        precondition(p > 0 && p < 1, "p must be in (0, 1), got \(p)")
        if p == 0.5 { return 0 }
        if p < 0.5 { return -quantile(1 - p, df: df) }
        var lo = 0.0, hi = 1.0
        while cdf(hi, df: df) < p { hi *= 2; if hi > 1e300 { return .infinity } }
        for _ in 0..<200 {
            let mid = 0.5 * (lo + hi)
            if mid == lo || mid == hi { break }
            if cdf(mid, df: df) < p { lo = mid } else { hi = mid }
        }
        return 0.5 * (lo + hi)
    }

    /// The regularized incomplete beta function I_x(a, b), by the continued fraction of Numerical
    /// Recipes (3rd ed., 6.4) evaluated with the modified Lentz method, using the symmetry
    /// I_x(a, b) = 1 - I_{1-x}(b, a) where the fraction converges slowly.
    static func regularizedIncompleteBeta(x: Double, a: Double, b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let lnFront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x)
        if x < (a + 1) / (a + b + 2) {
            return exp(lnFront) * continuedFraction(x: x, a: a, b: b) / a
        }
        return 1 - exp(lnFront) * continuedFraction(x: 1 - x, a: b, b: a) / b
    }

    static func continuedFraction(x: Double, a: Double, b: Double) -> Double {
        let tiny = 1e-300
        var c = 1.0
        var d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        for m in 1...10_000 {
            let m = Double(m)
            let even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            d = 1 + even * d; if abs(d) < tiny { d = tiny }
            c = 1 + even / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            h *= d * c
            let odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            d = 1 + odd * d; if abs(d) < tiny { d = tiny }
            c = 1 + odd / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < 1e-16 { break }
        }
        return h
    }
}

/// A method against a reference, paired by seed: the per-seed differences of one metric, their
/// mean, and a two-sided Student-t interval over seeds (the seeds are the independent units: each
/// one trains, estimates and fine-tunes anew).
public struct PairedDifference: Sendable, Equatable, Codable {
    /// method - reference, one per seed (same order as the seeds).
    public var differences: [Double]
    public var mean: Double
    /// Sample standard deviation of the differences (n - 1 in the denominator); nil for 1 seed.
    public var standardDeviation: Double?
    /// The interval `mean +- t_{(1+level)/2, n-1} * sd / sqrt(n)`; nil for fewer than 2 seeds.
    public var interval: ConfidenceInterval?
    /// Seeds where the method was better (higher, or lower for metrics where lower is better).
    public var improved: Int
    public var seeds: Int
    /// Whether the interval excludes zero (never for fewer than 2 seeds).
    public var significant: Bool

    enum CodingKeys: String, CodingKey {
        case differences, mean, interval, improved, seeds, significant
        case standardDeviation = "standard_deviation"
    }

    /// - Parameters:
    ///   - method: the metric per seed for the method; reference: the same seeds' reference values.
    ///   - higherIsBetter: AUROC and AUPR true; FPR95 false.
    ///   - level: the interval's coverage (0.95).
    public init(method: [Double], reference: [Double], higherIsBetter: Bool, level: Double = 0.95) {
        precondition(method.count == reference.count && !method.isEmpty, "paired values need equal, non-empty seed lists")
        differences = zip(method, reference).map { $0 - $1 }
        let n = Double(differences.count)
        mean = differences.reduce(0, +) / n
        seeds = differences.count
        improved = differences.filter { higherIsBetter ? $0 > 0 : $0 < 0 }.count
        if differences.count >= 2 {
            let m = mean
            let sd = (differences.map { ($0 - m) * ($0 - m) }.reduce(0, +) / (n - 1)).squareRoot()
            let half = StudentT.quantile((1 + level) / 2, df: n - 1) * sd / n.squareRoot()
            standardDeviation = sd
            interval = ConfidenceInterval(lower: mean - half, upper: mean + half)
            significant = mean - half > 0 || mean + half < 0
        } else {
            standardDeviation = nil
            interval = nil
            significant = false
        }
    }
}
