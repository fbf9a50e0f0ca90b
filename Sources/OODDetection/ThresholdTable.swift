// Ranking curves shared by every OOD metric: the scores of both sets are sorted once and grouped by
// distinct value, so every threshold-based metric is an O(number of distinct scores) scan and
// tied scores are handled exactly (a threshold either accepts a whole tie group or none of it).

/// Per-distinct-score sample counts of the ID and OOD sets, in DESCENDING score order.
///
/// Group `g` holds every sample whose score equals `thresholds[g]`; accepting "score >= t" at
/// `t = thresholds[g]` accepts groups `0...g`. Counts are 64-bit. All scores must be finite
/// (checked by the public entry points before building the table).
struct ThresholdTable {
    /// Distinct score values, strictly decreasing. `-0.0` and `0.0` are one group.
    var thresholds: [Double] = []
    /// Number of ID samples at each distinct score.
    var idCounts: [Int64] = []
    /// Number of OOD samples at each distinct score.
    var oodCounts: [Int64] = []
    let nID: Int64
    let nOOD: Int64

    /// Sorts `idScores` and `oodScores` together (O(n log n)) and groups equal scores.
    init(idScores: [Double], oodScores: [Double]) {
        nID = Int64(idScores.count)
        nOOD = Int64(oodScores.count)
        // Pack each sample into one array so a single sort orders both sets; the order inside a
        // tie group is irrelevant because only the per-group counts are kept.
        var entries = [TaggedScore]()
        entries.reserveCapacity(idScores.count + oodScores.count)
        for s in idScores { entries.append(TaggedScore(score: s, isID: true)) }
        for s in oodScores { entries.append(TaggedScore(score: s, isID: false)) }
        entries.sort { $0.score > $1.score }

        entries.withUnsafeBufferPointer { e in
            var g = -1
            for i in 0..<e.count {
                let s = e[i].score
                if g < 0 || s != thresholds[g] {
                    thresholds.append(s)
                    idCounts.append(0)
                    oodCounts.append(0)
                    g += 1
                }
                if e[i].isID { idCounts[g] += 1 } else { oodCounts[g] += 1 }
            }
        }
    }

    var groupCount: Int { thresholds.count }

    // MARK: AUROC

    /// Area under the ROC curve with ID as the positive class: P(s_id > s_ood) + 1/2 P(s_id = s_ood),
    /// i.e. the Mann-Whitney U statistic divided by nID * nOOD. The numerator 2U is accumulated
    /// exactly in 128 bits, so the result is the correctly rounded quotient whenever 2U < 2^53.
    func auroc() -> Double {
        precondition(nID > 0 && nOOD > 0, "auroc needs both sets non-empty, got nID=\(nID) nOOD=\(nOOD)")
        var acc = WideAccumulator()
        var oodBelow = UInt64(nOOD)
        idCounts.withUnsafeBufferPointer { idc in
            oodCounts.withUnsafeBufferPointer { oodc in
                for g in 0..<idc.count {
                    let oodHere = UInt64(oodc[g])
                    oodBelow -= oodHere
                    let idHere = UInt64(idc[g])
                    if idHere == 0 { continue }
                    // each ID sample here beats `oodBelow` OOD samples and ties with `oodHere`.
                    acc.add(idHere.multipliedFullWidth(by: 2 &* oodBelow &+ oodHere))
                }
            }
        }
        return acc.doubleValue / (2.0 * Double(nID) * Double(nOOD))
    }

    // MARK: Positive-class views

    /// Cumulative (truePositives, falsePositives) per threshold, for the chosen positive class,
    /// ordered from the strictest threshold to the loosest.
    ///
    /// - ID positive: thresholds in descending score order ("accept if score >= t").
    /// - OOD positive: scores negated (OpenOOD, AUPR-Out), i.e. ascending original score order
    ///   ("flag as OOD if score <= t").
    func cumulativeCounts(positive: PositiveClass) -> (tps: [Int64], fps: [Int64]) {
        let n = groupCount
        var tps = [Int64](repeating: 0, count: n)
        var fps = [Int64](repeating: 0, count: n)
        let pos = positive == .id ? idCounts : oodCounts
        let neg = positive == .id ? oodCounts : idCounts
        var tp: Int64 = 0
        var fp: Int64 = 0
        for k in 0..<n {
            let g = positive == .id ? k : n - 1 - k
            tp += pos[g]
            fp += neg[g]
            tps[k] = tp
            fps[k] = fp
        }
        return (tps, fps)
    }

    // MARK: Average precision

    /// Average precision as scikit-learn's `average_precision_score` defines it:
    /// AP = sum over distinct thresholds k of (R_k - R_{k-1}) * P_k, with P_k = TP_k / (TP_k + FP_k)
    /// from counts and R_k = TP_k / P. Step-wise, not the trapezoid.
    func averagePrecision(positive: PositiveClass) -> Double {
        let (tps, fps) = cumulativeCounts(positive: positive)
        let totalPositive = Double(positive == .id ? nID : nOOD)
        var ap = 0.0
        var previousTP: Int64 = 0
        for k in 0..<tps.count {
            let tp = tps[k]
            if tp != previousTP {
                let precision = Double(tp) / Double(tp + fps[k])
                ap += (Double(tp - previousTP) / totalPositive) * precision
                previousTP = tp
            }
        }
        return ap
    }

    /// The trapezoid rule over the precision-recall points of every distinct threshold, from the
    /// strictest, after the point (recall 0, precision 1): what scikit-learn's
    /// `auc(*precision_recall_curve(...)[1::-1])` gives (OpenOOD's AUPR). A threshold that adds
    /// only negatives contributes no area but sets the next segment's left height.
    func trapezoidAUPR(positive: PositiveClass) -> Double {
        let (tps, fps) = cumulativeCounts(positive: positive)
        let totalPositive = Double(positive == .id ? nID : nOOD)
        var area = 0.0
        var previousTP: Int64 = 0
        var previousPrecision = 1.0
        for k in 0..<tps.count {
            let tp = tps[k]
            let precision = Double(tp) / Double(tp + fps[k])
            if tp != previousTP {
                area += (Double(tp - previousTP) / totalPositive) * ((precision + previousPrecision) * 0.5)
                previousTP = tp
            }
            previousPrecision = precision
        }
        return area
    }

    // MARK: FPR at a recall level

    /// FPR (fraction of the negative class accepted) at the strictest threshold whose recall
    /// TP/P reaches `recallLevel`. Recall is compared as the Double quotient TP/P, which equals the
    /// literal 0.95 exactly when TP/P is exactly 19/20.
    func fprFirstReaching(_ recallLevel: Double, positive: PositiveClass) -> Double {
        let (tps, fps) = cumulativeCounts(positive: positive)
        let p = Double(positive == .id ? nID : nOOD)
        let n = Double(positive == .id ? nOOD : nID)
        for k in 0..<tps.count where Double(tps[k]) / p >= recallLevel {
            return Double(fps[k]) / n
        }
        return 1.0  // unreachable for recallLevel <= 1: the loosest threshold has recall 1.
    }

    /// The UM / energy-OOD / Outlier-Exposure reference rule (`fpr_and_fdr_at_recall`), ID positive:
    /// among the distinct thresholds from the strictest one down to the first that reaches full
    /// recall, take the one whose recall TP/P (Double) is CLOSEST to `recallLevel`; equal distances go
    /// to the higher recall (the reference scans recall in decreasing order and keeps the first
    /// minimum), and among thresholds with equal recall the loosest one (largest FPR) wins. The
    /// chosen recall can be below `recallLevel`.
    func fprClosestRecall(_ recallLevel: Double) -> Double {
        let (tps, fps) = cumulativeCounts(positive: .id)
        let p = Double(nID)
        guard let lastIndex = tps.firstIndex(of: nID) else { return 1.0 }
        var best = lastIndex
        var bestDistance = Double.infinity
        var k = lastIndex
        while k >= 0 {
            let distance = abs(Double(tps[k]) / p - recallLevel)
            if distance < bestDistance {
                bestDistance = distance
                best = k
            }
            k -= 1
        }
        return Double(fps[best]) / Double(nOOD)
    }

    /// OpenOOD v1.5 (`auc_and_fpr_recall`): OOD positive, scores negated, the ROC points of
    /// `sklearn.metrics.roc_curve` with its default `drop_intermediate=True` (a point is dropped
    /// when the steps before and after it are equal, i.e. it lies inside a straight run), then
    /// FPR (fraction of ID flagged as OOD) at the first remaining point with OOD recall
    /// >= `recallLevel`. Without dropped points this equals `fprFirstReaching(_, .ood)`.
    func fprOpenOOD(_ recallLevel: Double) -> Double {
        let (tps, fps) = cumulativeCounts(positive: .ood)
        let p = Double(nOOD)
        let n = tps.count
        for k in 0..<n {
            if n > 2 && k > 0 && k < n - 1 {
                let secondDiffFP = fps[k + 1] - 2 * fps[k] + fps[k - 1]
                let secondDiffTP = tps[k + 1] - 2 * tps[k] + tps[k - 1]
                if secondDiffFP == 0 && secondDiffTP == 0 { continue }  // dropped point
            }
            if Double(tps[k]) / p >= recallLevel { return Double(fps[k]) / Double(nID) }
        }
        return 1.0  // unreachable for recallLevel <= 1.
    }
}

/// Which set is the positive class of a ranking curve.
enum PositiveClass { case id, ood }

struct TaggedScore {
    var score: Double
    var isID: Bool
}

/// Exact unsigned 128-bit sum of 128-bit products (for the Mann-Whitney numerator).
struct WideAccumulator {
    var high: UInt64 = 0
    var low: UInt64 = 0

    mutating func add(_ product: (high: UInt64, low: UInt64.Magnitude)) {
        let (sum, overflow) = low.addingReportingOverflow(product.low)
        low = sum
        high = high &+ product.high &+ (overflow ? 1 : 0)
    }

    var doubleValue: Double { Double(high) * 18_446_744_073_709_551_616.0 + Double(low) }
}
