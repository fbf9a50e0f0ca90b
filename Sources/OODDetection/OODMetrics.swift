import Foundation

// OOD detection metrics with named conventions.
//
// Convention throughout: scores are oriented so that HIGHER = more in-distribution (ID). ID is the
// positive class (as in the UM paper, Zhu et al., ICML 2023, and the energy-OOD / Outlier-Exposure
// code it builds on) unless an FPR mode says otherwise. All metrics are fractions in [0, 1],
// computed in Double from Int64 counts.

/// How FPR95 is computed. The raw value is what the CLI accepts and what JSON output records.
public enum FPRMode: String, Codable, Sendable, CaseIterable {
    /// ID positive. The fraction of OOD samples accepted (score >= t) at the LARGEST threshold t
    /// whose ID recall (TPR) is at least 0.95. Default.
    case strict
    /// ID positive, the UM / energy-OOD / Outlier-Exposure reference code's rule
    /// (`fpr_and_fdr_at_recall`, recall_level 0.95). Candidates are the distinct scores from the
    /// highest down to the lowest ID score; recall = TP/P in float64; the candidate with the
    /// smallest |recall - 0.95| wins, and on exactly equal distances (and among candidates of equal
    /// recall) the LOOSEST threshold wins, as numpy's argmin keeps the first minimum of the
    /// reference's low-to-high scan. Two consequences, both differing from `strict`:
    /// the chosen recall can sit below 0.95 (e.g. 0.94 beats 1.0), which drops the OOD scores tied
    /// with the next ID score; and OOD scores lying between the ID score that reaches the chosen
    /// recall and the next lower ID score are counted (ID 1...100, OOD [5.5]: strict 0, reference 1).
    case reference
    /// OOD positive, OpenOOD v1.5 convention (`auc_and_fpr_recall`): scores negated, the fraction
    /// of ID samples flagged as OOD (score <= t) at the first point of scikit-learn's `roc_curve`
    /// (default `drop_intermediate=True`) whose OOD recall is at least 0.95. Only FPR95 follows
    /// OpenOOD: AUPR-In/Out stay average precision here, whereas OpenOOD integrates its PR curves
    /// with the trapezoid rule (`metrics.auc`), which gives different AUPR numbers.
    case openood

    /// Decodes the raw value; an unknown one is a `DecodingError.dataCorrupted` whose
    /// description lists the valid values (configuration errors quote it).
    public init(from decoder: Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let mode = FPRMode(rawValue: raw) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "one of " + FPRMode.allCases.map(\.rawValue).joined(separator: ", ")))
        }
        self = mode
    }

    /// Short human label printed next to the number, e.g. in a results table header.
    public var label: String {
        switch self {
        case .strict: return "FPR@95%TPR (ID positive, strict: first threshold with ID recall >= 95%)"
        case .reference: return "FPR@95%TPR (ID positive, UM/energy reference: ID recall closest to 95%)"
        case .openood: return "FPR@95%TPR (OOD positive, OpenOOD: ID accepted at OOD recall >= 95%)"
        }
    }

    /// The positive class of the FPR95 curve: "ID" or "OOD".
    public var positiveClass: String { self == .openood ? "OOD" : "ID" }
}

/// How AUPR-In and AUPR-Out integrate the precision-recall curve. The raw value is what the
/// configuration (`evaluate.aupr`) and the CLI (`--aupr`) accept and what JSON records.
public enum AUPRMode: String, Codable, Sendable, CaseIterable {
    /// Average precision, scikit-learn's `average_precision_score`: sum over distinct thresholds
    /// of (R_k - R_{k-1}) * P_k, a step function with no interpolation. Default (the UM paper's
    /// tables and the energy-OOD code use it).
    case averagePrecision = "average_precision"
    /// The trapezoid rule over scikit-learn's `precision_recall_curve` points, with the point
    /// (recall 0, precision 1) before the strictest threshold: `auc(recall, precision)`, what
    /// OpenOOD v1.5 and pytorch-ood print. Sum over distinct thresholds of
    /// (R_k - R_{k-1}) * (P_k + P_{k-1}) / 2, P_0 = 1, where a threshold that adds only negatives
    /// is a point too (its precision is the left height of the next segment).
    case trapezoid

    public init(from decoder: Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let mode = AUPRMode(rawValue: raw) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "one of " + AUPRMode.allCases.map(\.rawValue).joined(separator: ", ")))
        }
        self = mode
    }

    /// Short human label for report headers.
    public var label: String {
        switch self {
        case .averagePrecision: return "AUPR as average precision (scikit-learn average_precision_score; UM paper)"
        case .trapezoid: return "AUPR by the trapezoid rule (auc(recall, precision); OpenOOD, pytorch-ood)"
        }
    }
}

/// What to do with NaN / +inf / -inf scores.
public enum NonFinitePolicy: String, Sendable, CaseIterable {
    /// Throw `OODMetricsError.nonFiniteScores` naming how many are in each set. Default.
    case error
    /// Drop them before ranking and record the counts in `OODMetrics.excludedID/excludedOOD`.
    case exclude
}

/// Counts of non-finite values in one score set.
public struct NonFiniteCounts: Sendable, Equatable {
    public var nan: Int64 = 0
    public var positiveInfinity: Int64 = 0
    public var negativeInfinity: Int64 = 0
    public var total: Int64 { nan + positiveInfinity + negativeInfinity }

    public init(nan: Int64 = 0, positiveInfinity: Int64 = 0, negativeInfinity: Int64 = 0) {
        self.nan = nan
        self.positiveInfinity = positiveInfinity
        self.negativeInfinity = negativeInfinity
    }

    /// Counts the non-finite entries of `scores`.
    public init(counting scores: [Double]) {
        for s in scores where !s.isFinite {
            if s.isNaN { nan += 1 } else if s > 0 { positiveInfinity += 1 } else { negativeInfinity += 1 }
        }
    }

    var summary: String { "\(total) (\(nan) NaN, \(positiveInfinity) +inf, \(negativeInfinity) -inf)" }
}

/// Errors from `OODMetrics.compute`.
public enum OODMetricsError: Error, Equatable, CustomStringConvertible {
    /// Some scores are NaN or infinite and the policy is `.error`. Counts per set and totals.
    case nonFiniteScores(id: NonFiniteCounts, ood: NonFiniteCounts, nID: Int64, nOOD: Int64)
    /// A set has no (finite) scores left. `set` is "ID" or "OOD"; `excluded` = dropped non-finite.
    case emptyScores(set: String, excluded: Int64)

    public var description: String {
        switch self {
        case let .nonFiniteScores(id, ood, nID, nOOD):
            return "OOD metrics: non-finite scores: ID has \(id.summary) of \(nID), "
                + "OOD has \(ood.summary) of \(nOOD); expected all finite. "
                + "Hint: check the model for overflow (scores are computed in Double), or pass "
                + "--exclude-non-finite (umtrain metrics) or evaluate.exclude_non_finite: true to drop them; the counts are recorded."
        case let .emptyScores(set, excluded):
            return "OOD metrics: the \(set) score set is empty (expected at least 1 finite score, "
                + "got 0 after excluding \(excluded) non-finite). "
                + "Hint: check that the \(set) file/loader produced scores."
        }
    }
}

/// AUROC, AUPR-In, AUPR-Out and FPR95 of one (ID set, OOD set) pair.
///
/// All four are fractions in [0, 1]. `nID`/`nOOD` are the counts actually ranked (after exclusion).
/// JSON (via `Codable`) uses snake_case keys: `auroc`, `aupr_in`, `aupr_out`, `fpr95`, `n_id`,
/// `n_ood`, `fpr_mode`, `fpr_mode_label`, `fpr_positive_class`, `excluded_id`, `excluded_ood`;
/// a non-finite metric value is written as `null`, never as a bare `inf`/`NaN`.
public struct OODMetrics: Sendable, Equatable, Codable {
    /// Area under the ROC curve, ID positive, ties count one half (Mann-Whitney U / (nID * nOOD)).
    public var auroc: Double
    /// AUPR with ID positive, integrated as `auprMode` says (average precision by default).
    public var auprIn: Double
    /// AUPR with OOD positive and negated scores, integrated as `auprMode` says.
    public var auprOut: Double
    /// FPR at 95% recall under `fprMode` (see `FPRMode` for the positive class and threshold rule).
    public var fpr95: Double
    /// Number of ID scores ranked.
    public var nID: Int64
    /// Number of OOD scores ranked.
    public var nOOD: Int64
    /// The FPR95 convention used.
    public var fprMode: FPRMode
    /// Non-finite ID scores dropped (only non-zero under `NonFinitePolicy.exclude`).
    public var excludedID: Int64
    /// Non-finite OOD scores dropped (only non-zero under `NonFinitePolicy.exclude`).
    public var excludedOOD: Int64
    /// How the two AUPRs integrate the precision-recall curve.
    public var auprMode: AUPRMode

    public init(auroc: Double, auprIn: Double, auprOut: Double, fpr95: Double, nID: Int64,
                nOOD: Int64, fprMode: FPRMode, excludedID: Int64 = 0, excludedOOD: Int64 = 0, auprMode: AUPRMode = .averagePrecision) {
        self.auprMode = auprMode
        self.auroc = auroc
        self.auprIn = auprIn
        self.auprOut = auprOut
        self.fpr95 = fpr95
        self.nID = nID
        self.nOOD = nOOD
        self.fprMode = fprMode
        self.excludedID = excludedID
        self.excludedOOD = excludedOOD
    }

    /// Computes all metrics for one ID set and one OOD set in O(n log n) (one sort).
    ///
    /// - Parameters:
    ///   - idScores: `[nID]` scores of in-distribution samples, higher = more ID.
    ///   - oodScores: `[nOOD]` scores of out-of-distribution samples, same orientation.
    ///   - fprMode: FPR95 convention; `.strict` by default.
    ///   - nonFinite: `.error` (default) or `.exclude` for NaN / ±inf scores.
    ///   - auprMode: average precision (default) or the trapezoid rule.
    /// - Throws: `OODMetricsError.nonFiniteScores` (with per-set counts) under `.error`;
    ///   `OODMetricsError.emptyScores` when a set is empty (after exclusion).
    public static func compute(idScores: [Double], oodScores: [Double], fprMode: FPRMode = .strict,
                               nonFinite: NonFinitePolicy = .error, auprMode: AUPRMode = .averagePrecision) throws -> OODMetrics {
        let idBad = NonFiniteCounts(counting: idScores)
        let oodBad = NonFiniteCounts(counting: oodScores)
        var ids = idScores
        var oods = oodScores
        if idBad.total > 0 || oodBad.total > 0 {
            switch nonFinite {
            case .error:
                throw OODMetricsError.nonFiniteScores(id: idBad, ood: oodBad,
                                                      nID: Int64(idScores.count),
                                                      nOOD: Int64(oodScores.count))
            case .exclude:
                ids = idScores.filter { $0.isFinite }
                oods = oodScores.filter { $0.isFinite }
            }
        }
        if ids.isEmpty { throw OODMetricsError.emptyScores(set: "ID", excluded: idBad.total) }
        if oods.isEmpty { throw OODMetricsError.emptyScores(set: "OOD", excluded: oodBad.total) }

        let table = ThresholdTable(idScores: ids, oodScores: oods)
        let fpr: Double
        switch fprMode {
        case .strict: fpr = table.fprFirstReaching(0.95, positive: .id)
        case .reference: fpr = table.fprClosestRecall(0.95)
        case .openood: fpr = table.fprOpenOOD(0.95)
        }
        let aupr = { (positive: PositiveClass) in
            auprMode == .trapezoid ? table.trapezoidAUPR(positive: positive) : table.averagePrecision(positive: positive)
        }
        return OODMetrics(auroc: table.auroc(),
                          auprIn: aupr(.id),
                          auprOut: aupr(.ood),
                          fpr95: fpr, nID: table.nID, nOOD: table.nOOD, fprMode: fprMode,
                          excludedID: nonFinite == .exclude ? idBad.total : 0,
                          excludedOOD: nonFinite == .exclude ? oodBad.total : 0, auprMode: auprMode)
    }

    /// Unweighted mean of per-OOD-set metrics (the field's "average over OOD sets"). Counts are
    /// summed (`nID` is taken from the first row, since every row shares the ID set).
    /// Precondition: `rows` non-empty and all with the same `fprMode`.
    public static func average(_ rows: [OODMetrics]) -> OODMetrics {
        precondition(!rows.isEmpty, "OODMetrics.average needs at least one row, got 0")
        precondition(rows.allSatisfy { $0.fprMode == rows[0].fprMode && $0.auprMode == rows[0].auprMode },
                     "OODMetrics.average: rows mix FPR or AUPR modes \(rows.map(\.fprMode.rawValue)) \(rows.map(\.auprMode.rawValue))")
        let k = Double(rows.count)
        return OODMetrics(auroc: rows.map(\.auroc).reduce(0, +) / k,
                          auprIn: rows.map(\.auprIn).reduce(0, +) / k,
                          auprOut: rows.map(\.auprOut).reduce(0, +) / k,
                          fpr95: rows.map(\.fpr95).reduce(0, +) / k,
                          nID: rows[0].nID, nOOD: rows.map(\.nOOD).reduce(0, +),
                          fprMode: rows[0].fprMode, excludedID: rows[0].excludedID,
                          excludedOOD: rows.map(\.excludedOOD).reduce(0, +), auprMode: rows[0].auprMode)
    }

    // MARK: Codable (snake_case keys, null for non-finite)

    enum CodingKeys: String, CodingKey {
        case auroc
        case auprIn = "aupr_in"
        case auprOut = "aupr_out"
        case fpr95
        case nID = "n_id"
        case nOOD = "n_ood"
        case fprMode = "fpr_mode"
        case fprModeLabel = "fpr_mode_label"
        case fprPositiveClass = "fpr_positive_class"
        case excludedID = "excluded_id"
        case excludedOOD = "excluded_ood"
        case auprMode = "aupr_mode"
        case auprModeLabel = "aupr_mode_label"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        func put(_ v: Double, _ key: CodingKeys) throws {
            if v.isFinite { try c.encode(v, forKey: key) } else { try c.encodeNil(forKey: key) }
        }
        try put(auroc, .auroc)
        try put(auprIn, .auprIn)
        try put(auprOut, .auprOut)
        try put(fpr95, .fpr95)
        try c.encode(nID, forKey: .nID)
        try c.encode(nOOD, forKey: .nOOD)
        try c.encode(fprMode, forKey: .fprMode)
        try c.encode(fprMode.label, forKey: .fprModeLabel)
        try c.encode(fprMode.positiveClass, forKey: .fprPositiveClass)
        try c.encode(excludedID, forKey: .excludedID)
        try c.encode(excludedOOD, forKey: .excludedOOD)
        try c.encode(auprMode, forKey: .auprMode)
        try c.encode(auprMode.label, forKey: .auprModeLabel)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func get(_ key: CodingKeys) throws -> Double {
            try c.decodeIfPresent(Double.self, forKey: key) ?? .nan
        }
        auroc = try get(.auroc)
        auprIn = try get(.auprIn)
        auprOut = try get(.auprOut)
        fpr95 = try get(.fpr95)
        nID = try c.decode(Int64.self, forKey: .nID)
        nOOD = try c.decode(Int64.self, forKey: .nOOD)
        fprMode = try c.decode(FPRMode.self, forKey: .fprMode)
        excludedID = try c.decodeIfPresent(Int64.self, forKey: .excludedID) ?? 0
        excludedOOD = try c.decodeIfPresent(Int64.self, forKey: .excludedOOD) ?? 0
        auprMode = try c.decodeIfPresent(AUPRMode.self, forKey: .auprMode) ?? .averagePrecision
    }

    /// Human-readable line, metrics in percent with 2 decimals, e.g.
    /// `AUROC 75.00  AUPR-In 80.42  AUPR-Out 83.33  FPR95 33.33  (n_id 4, n_ood 3; FPR@95%TPR (ID positive, ...))`,
    /// plus `excluded non-finite: ID a, OOD b` when anything was excluded.
    public var summaryLine: String {
        func pct(_ v: Double) -> String { v.isFinite ? String(format: "%.2f", 100 * v) : "n/a" }
        var line = "AUROC \(pct(auroc))  AUPR-In \(pct(auprIn))  AUPR-Out \(pct(auprOut))  FPR95 \(pct(fpr95))"
            + "  (n_id \(nID), n_ood \(nOOD); \(fprMode.label); \(auprMode.label))"
        if excludedID > 0 || excludedOOD > 0 {
            line += "  excluded non-finite: ID \(excludedID), OOD \(excludedOOD)"
        }
        return line
    }

    /// One-line JSON object with sorted snake_case keys (UTF-8), for `umtrain metrics --json`.
    public func jsonString() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

/// Individual metric functions on plain score arrays (higher = ID). Preconditions: both arrays
/// non-empty and all scores finite (use `OODMetrics.compute` for checked input).
public enum OODMetricFunctions {
    /// AUROC, ID positive, ties one half. O(n log n).
    public static func auroc(idScores: [Double], oodScores: [Double]) -> Double {
        checked(idScores, oodScores).auroc()
    }

    /// Average precision (scikit-learn `average_precision_score`) of the positive set against the
    /// negative set, higher score = more positive. AUPR-In = `averagePrecision(positive: id,
    /// negative: ood)`; AUPR-Out = `averagePrecision(positive: ood.map(-), negative: id.map(-))`.
    public static func averagePrecision(positiveScores: [Double], negativeScores: [Double]) -> Double {
        checked(positiveScores, negativeScores).averagePrecision(positive: .id)
    }

    /// FPR under `mode` at `recallLevel` (a fraction in (0, 1]) of the mode's positive class: ID recall
    /// for `.strict`/`.reference`, OOD recall for `.openood`. `recallLevel` = 0.95 gives FPR95.
    public static func fpr(idScores: [Double], oodScores: [Double], recallLevel: Double = 0.95,
                           mode: FPRMode = .strict) -> Double {
        precondition(recallLevel > 0 && recallLevel <= 1, "recallLevel must be in (0, 1], got \(recallLevel)")
        let table = checked(idScores, oodScores)
        switch mode {
        case .strict: return table.fprFirstReaching(recallLevel, positive: .id)
        case .reference: return table.fprClosestRecall(recallLevel)
        case .openood: return table.fprOpenOOD(recallLevel)
        }
    }

    private static func checked(_ a: [Double], _ b: [Double]) -> ThresholdTable {
        precondition(!a.isEmpty && !b.isEmpty, "score sets must be non-empty, got [\(a.count)] and [\(b.count)]")
        precondition(a.allSatisfy(\.isFinite) && b.allSatisfy(\.isFinite),
                     "scores must be finite (use OODMetrics.compute to get a counted error)")
        return ThresholdTable(idScores: a, oodScores: b)
    }
}
