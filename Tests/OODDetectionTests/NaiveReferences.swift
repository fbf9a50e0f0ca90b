// Test-only helpers: a seeded generator and naive O(n^2) / per-threshold twins of the metrics,
// written independently of ThresholdTable (no grouping, no sorting tricks).
import Foundation

/// SplitMix64 (Steele, Lea & Flood 2014): deterministic 64-bit generator for property tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// `n` evenly spaced values from `a` to `b` inclusive (numpy.linspace).
func linspace(_ a: Double, _ b: Double, _ n: Int) -> [Double] {
    (0..<n).map { a + (b - a) * Double($0) / Double(n - 1) }
}

enum Naive {
    /// Pairwise AUROC: (2 * wins + ties) / (2 * nID * nOOD).
    static func auroc(_ id: [Double], _ ood: [Double]) -> Double {
        var twiceU: Int64 = 0
        for a in id {
            for b in ood {
                if a > b { twiceU += 2 } else if a == b { twiceU += 1 }
            }
        }
        return Double(twiceU) / (2.0 * Double(id.count) * Double(ood.count))
    }

    /// Candidate thresholds: every distinct score, descending.
    static func thresholds(_ a: [Double], _ b: [Double]) -> [Double] {
        Array(Set(a + b)).sorted(by: >)
    }

    /// AP by definition: for each distinct threshold t (descending), recall and precision of
    /// "score >= t" by direct counting; AP = sum (R_t - R_prev) * P_t.
    static func averagePrecision(positive: [Double], negative: [Double]) -> Double {
        var ap = 0.0
        var previousRecall = 0.0
        for t in thresholds(positive, negative) {
            let tp = positive.filter { $0 >= t }.count
            let fp = negative.filter { $0 >= t }.count
            let recall = Double(tp) / Double(positive.count)
            let precision = Double(tp) / Double(tp + fp)
            ap += (recall - previousRecall) * precision
            previousRecall = recall
        }
        return ap
    }

    /// Strict FPR: scan thresholds from high to low, stop at the first with TPR >= level.
    static func strictFPR(_ id: [Double], _ ood: [Double], level: Double = 0.95) -> Double {
        for t in thresholds(id, ood) {
            let tp = id.filter { $0 >= t }.count
            if Double(tp) / Double(id.count) >= level {
                return Double(ood.filter { $0 >= t }.count) / Double(ood.count)
            }
        }
        return .nan
    }

    /// The reference rule by direct counting: candidate thresholds are the distinct scores from
    /// the highest down to the highest one at which every ID sample is accepted; pick the one with
    /// |recall - level| smallest, preferring (on exact ties) the lower threshold, as the reference
    /// scans from low to high threshold and numpy.argmin keeps the first minimum.
    static func referenceFPR(_ id: [Double], _ ood: [Double], level: Double = 0.95) -> Double {
        let minID = id.min()!
        let candidates = thresholds(id, ood).filter { $0 >= minID }.sorted()  // ascending = loosest first
        var best = Double.nan
        var bestDistance = Double.infinity
        for t in candidates {
            let recall = Double(id.filter { $0 >= t }.count) / Double(id.count)
            let distance = abs(recall - level)
            if distance < bestDistance {
                bestDistance = distance
                best = Double(ood.filter { $0 >= t }.count) / Double(ood.count)
            }
        }
        return best
    }
}
