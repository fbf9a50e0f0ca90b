// Percentile-bootstrap confidence intervals of the OOD metrics (Efron & Tibshirani, "An
// Introduction to the Bootstrap", 1993, ch. 13), stratified: the ID and the OOD samples are
// resampled separately, each with replacement to its own size, so every replicate keeps the
// class sizes. The scores are sorted once; a replicate is a vector of resample counts, turned
// into per-distinct-score counts in O(n) and scanned by the same ranking code as `OODMetrics`.

/// A two-sided percentile interval, fractions like the metric itself.
public struct ConfidenceInterval: Sendable, Equatable, Codable {
    public var lower: Double
    public var upper: Double
    public init(lower: Double, upper: Double) {
        self.lower = lower
        self.upper = upper
    }
}

/// Intervals of the four OOD metrics.
public struct MetricIntervals: Sendable, Equatable, Codable {
    public var auroc: ConfidenceInterval
    public var auprIn: ConfidenceInterval
    public var auprOut: ConfidenceInterval
    public var fpr95: ConfidenceInterval

    enum CodingKeys: String, CodingKey {
        case auroc, fpr95
        case auprIn = "aupr_in", auprOut = "aupr_out"
    }

    public init(auroc: ConfidenceInterval, auprIn: ConfidenceInterval, auprOut: ConfidenceInterval, fpr95: ConfidenceInterval) {
        self.auroc = auroc
        self.auprIn = auprIn
        self.auprOut = auprOut
        self.fpr95 = fpr95
    }
}

/// The scores of one (ID set, OOD set) pair sorted once, so that the metrics of a resample given
/// by per-sample counts cost O(n) instead of a new sort: the samples are kept in descending score
/// order with tie groups marked, and a replicate is two streaming passes over them (descending:
/// AUROC, AUPR-In, the ID-positive FPR95 rules; ascending: AUPR-Out, OpenOOD's FPR95) that
/// accumulate each tie group's resampled counts on the fly, with no per-replicate allocation.
public struct BootstrapTable: Sendable {
    /// Every sample in descending score order, as its slot in a combined count vector: ID
    /// sample i is slot i, OOD sample j is slot `idCount + j`.
    let order: [Int32]
    /// `groupEnd[k]`: whether `order[k]` is the last of its tie group (in descending order).
    let groupEnd: [Bool]
    public let idCount: Int
    public let oodCount: Int

    /// One sort of both sets. Precondition: every score finite, both sets non-empty.
    public init(idScores: [Double], oodScores: [Double]) {
        precondition(!idScores.isEmpty && !oodScores.isEmpty, "BootstrapTable needs both sets non-empty")
        precondition(idScores.allSatisfy(\.isFinite) && oodScores.allSatisfy(\.isFinite), "BootstrapTable needs finite scores")
        var tagged: [(score: Double, tag: Int32)] = []
        tagged.reserveCapacity(idScores.count + oodScores.count)
        for (i, s) in idScores.enumerated() { tagged.append((s, Int32(i))) }
        for (j, s) in oodScores.enumerated() { tagged.append((s, Int32(idScores.count + j))) }
        tagged.sort { $0.score > $1.score }
        order = tagged.map(\.tag)
        // -0.0 == 0.0: one group, as ThresholdTable.
        groupEnd = tagged.indices.map { $0 + 1 == tagged.count || tagged[$0 + 1].score != tagged[$0].score }
        idCount = idScores.count
        oodCount = oodScores.count
    }

    /// The metrics of the resample in which ID sample i appears `idCounts[i]` times and OOD
    /// sample j `oodCounts[j]` times: exactly `OODMetrics.compute` on the expanded score lists
    /// (tested against it, bit for bit). Precondition: counts as long as the sets, each set's
    /// total > 0.
    public func metrics(idCounts: [Int32], oodCounts: [Int32], fprMode: FPRMode, auprMode: AUPRMode = .averagePrecision) -> OODMetrics {
        precondition(idCounts.count == idCount && oodCounts.count == oodCount, "counts must match the set sizes")
        var scratch: [Double] = []
        let combined = idCounts + oodCounts
        return combined.withUnsafeBufferPointer { metrics(counts: $0, fprMode: fprMode, scratch: &scratch, auprMode: auprMode) }
    }

    /// As ``metrics(idCounts:oodCounts:fprMode:)`` with the counts in one vector (ID samples,
    /// then OOD samples: `idCount + oodCount` entries), reusing `scratch` across replicates.
    ///
    /// One descending pass over the samples gives AUROC, AUPR-In, the ID-positive FPR95 rules
    /// and AUPR-Out (whose ascending-order terms are kept in `scratch` and summed in ascending
    /// order, as `ThresholdTable` sums them); OpenOOD's FPR95 needs a second, ascending pass.
    /// The per-sample step is branch-free (the ID/OOD split is a select on the slot), so the
    /// interleaving of ID and OOD samples costs no mispredictions.
    /// Under the trapezoid AUPR each term also needs the precision of the previous curve point:
    /// for AUPR-In the previous non-empty group's, kept as it goes; for AUPR-Out (ascending) the
    /// precision of everything strictly below the group, known from the totals.
    public func metrics(counts: UnsafeBufferPointer<Int32>, fprMode: FPRMode, scratch: inout [Double],
                        auprMode: AUPRMode = .averagePrecision) -> OODMetrics {
        let trapezoid = auprMode == .trapezoid
        precondition(counts.count == idCount + oodCount, "counts must hold idCount + oodCount entries")
        var nID: Int64 = 0, nOOD: Int64 = 0
        for i in 0..<idCount { nID += Int64(counts[i]) }
        for j in idCount..<counts.count { nOOD += Int64(counts[j]) }
        precondition(nID > 0 && nOOD > 0, "a resample needs samples of both sets")
        let p = Double(nID), q = Double(nOOD)
        var aurocTwice = 0.0          // sum over groups of idHere * (2 * oodBelow + oodHere)
        var apIn = 0.0, previousIn = 1.0
        var tp: Int64 = 0, fp: Int64 = 0
        var strict = -1.0
        // The closest-recall rule is only followed when it is the convention asked for.
        var referenceBest = 1.0, referenceDistance = Double.infinity, referenceDone = fprMode != .reference
        var outTerms = 0
        if scratch.count < order.count { scratch = [Double](repeating: 0, count: order.count) }
        let firstOOD = Int32(idCount)
        order.withUnsafeBufferPointer { o in
            groupEnd.withUnsafeBufferPointer { ends in
                scratch.withUnsafeMutableBufferPointer { terms in
                    var a: Int64 = 0, b: Int64 = 0   // the current group's ID and OOD counts
                    for k in 0..<o.count {
                        // Wrapping arithmetic: every count is at most nID + nOOD < 2^62.
                        let slot = o[k]
                        let c = Int64(truncatingIfNeeded: counts[Int(truncatingIfNeeded: slot)])
                        let ood = slot >= firstOOD
                        a &+= ood ? 0 : c
                        b &+= ood ? c : 0
                        guard ends[k], a &+ b > 0 else { continue }
                        let oodBelow = nOOD &- fp &- b
                        aurocTwice += Double(a) * Double(2 &* oodBelow &+ b)
                        if b > 0 {
                            // AUPR-Out (OOD positive, ascending): TP = OOD at or below, FP = ID at or below.
                            let otp = nOOD &- fp, ofp = nID &- tp
                            let precision = Double(otp) / Double(otp &+ ofp)
                            if trapezoid {
                                let below = otp &- b, belowNeg = ofp &- a
                                let previous = below &+ belowNeg == 0 ? 1.0 : Double(below) / Double(below &+ belowNeg)
                                terms[outTerms] = (Double(b) / q) * ((precision + previous) * 0.5)
                            } else {
                                terms[outTerms] = (Double(b) / q) * precision
                            }
                            outTerms &+= 1
                        }
                        tp &+= a
                        fp &+= b
                        let precisionIn = Double(tp) / Double(tp &+ fp)
                        if a > 0 { apIn += trapezoid ? (Double(a) / p) * ((precisionIn + previousIn) * 0.5) : (Double(a) / p) * precisionIn }
                        previousIn = precisionIn
                        // recall = tp / nID >= 0.95, compared exactly in integers (the same decision
                        // as the Double comparison for any nID below 10^15: the gap between
                        // tp / nID and 0.95 is then either 0 or at least 1 / (20 nID)).
                        if strict < 0 && 20 &* tp >= 19 &* nID { strict = Double(fp) / q }
                        if !referenceDone {
                            // The closest recall among thresholds up to the first with full recall; on
                            // equal distances the later (looser) one, as ThresholdTable.fprClosestRecall.
                            let d = abs(Double(tp) / p - 0.95)
                            if d <= referenceDistance { referenceDistance = d; referenceBest = Double(fp) / q }
                            if tp == nID { referenceDone = true }
                        }
                        a = 0; b = 0
                    }
                }
            }
        }
        var apOut = 0.0
        for k in stride(from: outTerms - 1, through: 0, by: -1) { apOut += scratch[k] }
        let fpr: Double
        switch fprMode {
        case .strict: fpr = strict < 0 ? 1 : strict
        case .reference: fpr = referenceBest
        case .openood: fpr = openOODFPR(counts: counts, nID: nID, nOOD: nOOD)
        }
        return OODMetrics(auroc: aurocTwice / (2 * p * q), auprIn: apIn, auprOut: apOut, fpr95: fpr, nID: nID, nOOD: nOOD,
                          fprMode: fprMode, auprMode: auprMode)
    }

    /// OpenOOD's FPR95 (`ThresholdTable.fprOpenOOD`) of a resample: an ascending pass (OOD
    /// positive) over the non-empty groups; `roc_curve(drop_intermediate=True)` drops a point
    /// when the steps before and after it are equal, decided once the next point is known.
    func openOODFPR(counts: UnsafeBufferPointer<Int32>, nID: Int64, nOOD: Int64) -> Double {
        let p = Double(nID), q = Double(nOOD)
        var result = -1.0
        var otp: Int64 = 0, ofp: Int64 = 0, points = 0
        var p1 = (tp: Int64(0), fp: Int64(0)), p2 = (tp: Int64(0), fp: Int64(0))
        func consider(_ point: (tp: Int64, fp: Int64), previous: (tp: Int64, fp: Int64)?, next: (tp: Int64, fp: Int64)?) {
            if result >= 0 { return }
            if let previous, let next, next.fp - 2 * point.fp + previous.fp == 0 && next.tp - 2 * point.tp + previous.tp == 0 { return }
            if Double(point.tp) / q >= 0.95 { result = Double(point.fp) / p }
        }
        var a: Int64 = 0, b: Int64 = 0
        var k = order.count - 1
        while k >= 0 {
            let slot = Int(order[k])
            if slot < idCount { a += Int64(counts[slot]) } else { b += Int64(counts[slot]) }
            // Ascending, a group ends where the previous (in descending order) group ended.
            let groupDone = k == 0 || groupEnd[k - 1]
            k -= 1
            guard groupDone, a + b > 0 else { continue }
            otp += b
            ofp += a
            let current = (tp: otp, fp: ofp)
            points += 1
            if points >= 2 { consider(p1, previous: points >= 3 ? p2 : nil, next: current) }
            p2 = p1
            p1 = current
            a = 0; b = 0
        }
        consider(p1, previous: nil, next: nil)   // the last point is never dropped
        return result < 0 ? 1 : result
    }
}

/// A counter-based stream of resample counts: the counts of replicate `r` of a set of size `n`
/// under key `key` are a pure function of (seed, key, r), so any rank can compute any replicate.
public struct ResampleStream: Sendable {
    public let seed: UInt64
    public init(seed: UInt64) { self.seed = seed }

    /// `n` draws with replacement from `0..<n` (as counts), stream `(key, replicate)`.
    public func counts(n: Int, key: UInt64, replicate: Int) -> [Int32] {
        var c = [Int32](repeating: 0, count: n)
        c.withUnsafeMutableBufferPointer { fill($0, key: key, replicate: replicate) }
        return c
    }

    /// The same counts as ``counts(n:key:replicate:)`` written into `buffer` (n = its count),
    /// which is overwritten: no allocation per replicate.
    public func fill(_ buffer: UnsafeMutableBufferPointer<Int32>, key: UInt64, replicate: Int) {
        var rng = BootstrapRNG(seed: seed, stream: key &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(replicate))
        let n = buffer.count
        buffer.update(repeating: 0)
        for _ in 0..<n { buffer[rng.below(n)] += 1 }
    }

    /// A stable 64-bit key for a name (FNV-1a of its UTF-8 bytes).
    public static func key(_ name: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }
}

/// SplitMix64 (Steele et al., OOPSLA 2014) with Lemire's unbiased bounded draw; local to this
/// dependency-free module.
struct BootstrapRNG {
    var state: UInt64
    init(seed: UInt64, stream: UInt64) {
        state = Self.mix(Self.mix(seed) ^ stream)
    }
    static func mix(_ v: UInt64) -> UInt64 {
        var z = v
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }
    mutating func below(_ n: Int) -> Int {
        let bound = UInt64(n)
        var product = next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold { product = next().multipliedFullWidth(by: bound) }
        }
        return Int(product.high)
    }
}

/// Percentile-bootstrap intervals of the OOD metrics of one score over several OOD sets, and of
/// their unweighted average (the ID set is resampled once per replicate and shared by every OOD
/// set, as it is in the data; each OOD set is resampled on its own).
public enum BootstrapIntervals {
    /// The result for one score: an interval per OOD set (same order as `oodScores`) and one for
    /// the average over the sets whose `inAverage` is true (nil when none is).
    public struct Result: Sendable, Equatable {
        public var perSet: [MetricIntervals]
        public var average: MetricIntervals?
        public init(perSet: [MetricIntervals], average: MetricIntervals?) {
            self.perSet = perSet
            self.average = average
        }
    }

    /// The replicate metrics of one score, sets x replicates (plus the average as a last row).
    public struct Replicates: Sendable {
        /// `perSet[s][r]`; `average[r]` when some set enters the average.
        public var perSet: [[OODMetrics]]
        public var average: [OODMetrics]
        public init(perSet: [[OODMetrics]], average: [OODMetrics]) {
            self.perSet = perSet
            self.average = average
        }
    }

    /// - Parameters:
    ///   - idScores: `[nID]` finite ID scores; oodScores: per set, `[nOOD]` finite scores.
    ///   - inAverage: which sets enter the average (real sets; synthetic ones do not).
    ///   - replicates: B resamples (2000 by default in the tool).
    ///   - level: the interval's coverage, 0.95 for 95%.
    ///   - stream: counts are keyed by `scoreKey` for ID and `scoreKey ^ key(set name)` per set.
    public static func compute(idScores: [Double], oodScores: [(name: String, scores: [Double])], inAverage: [Bool],
                               fprMode: FPRMode, replicates: Int, level: Double = 0.95, stream: ResampleStream,
                               scoreKey: UInt64, onePass: Bool = true, auprMode: AUPRMode = .averagePrecision) -> Result {
        precondition(replicates > 0 && level > 0 && level < 1, "replicates > 0 and level in (0, 1)")
        let r = replicateMetrics(idScores: idScores, oodScores: oodScores, inAverage: inAverage, fprMode: fprMode,
                                 range: 0..<replicates, stream: stream, scoreKey: scoreKey, onePass: onePass, auprMode: auprMode)
        return summarize(r, level: level)
    }

    /// The metrics of replicates `range` (any subset: replicate r depends only on the stream and
    /// r, so ranges computed on different ranks concatenate to the full run).
    /// `onePass: false` forces one pass per set under strict FPR95 too (the same results; for
    /// benchmarks and tests).
    public static func replicateMetrics(idScores: [Double], oodScores: [(name: String, scores: [Double])], inAverage: [Bool],
                                        fprMode: FPRMode, range: Range<Int>, stream: ResampleStream, scoreKey: UInt64,
                                        onePass: Bool = true, auprMode: AUPRMode = .averagePrecision) -> Replicates {
        if fprMode == .strict && onePass {
            return strictReplicateMetrics(idScores: idScores, oodScores: oodScores, inAverage: inAverage, range: range,
                                          stream: stream, scoreKey: scoreKey, auprMode: auprMode)
        }
        let tables = oodScores.map { BootstrapTable(idScores: idScores, oodScores: $0.scores) }
        let setKeys = oodScores.map { scoreKey ^ ResampleStream.key($0.name) }
        var perSet = [[OODMetrics]](repeating: [], count: tables.count)
        var averages: [OODMetrics] = []
        let averaged = inAverage.contains(true)
        var scratch: [Double] = []
        let nID = idScores.count
        // One combined count vector per replicate and set: the shared ID counts, then the set's.
        var combined = [Int32](repeating: 0, count: nID + (tables.map(\.oodCount).max() ?? 0))
        var rowsForAverage: [OODMetrics] = []
        rowsForAverage.reserveCapacity(tables.count)
        combined.withUnsafeMutableBufferPointer { all in
            for r in range {
                stream.fill(UnsafeMutableBufferPointer(rebasing: all[0..<nID]), key: scoreKey, replicate: r)
                rowsForAverage.removeAll(keepingCapacity: true)
                for (s, table) in tables.enumerated() {
                    let counts = UnsafeMutableBufferPointer(rebasing: all[0..<(nID + table.oodCount)])
                    stream.fill(UnsafeMutableBufferPointer(rebasing: counts[nID...]), key: setKeys[s], replicate: r)
                    let m = table.metrics(counts: UnsafeBufferPointer(counts), fprMode: fprMode, scratch: &scratch, auprMode: auprMode)
                    perSet[s].append(m)
                    if inAverage[s] { rowsForAverage.append(m) }
                }
                if averaged { averages.append(OODMetrics.average(rowsForAverage)) }
            }
        }
        return Replicates(perSet: perSet, average: averages)
    }

    /// ``replicateMetrics(idScores:oodScores:inAverage:fprMode:range:stream:scoreKey:)`` under
    /// strict FPR95, all sets in one pass per replicate (``BootstrapSetsTable``): the same counts
    /// and the same metrics, bit for bit.
    static func strictReplicateMetrics(idScores: [Double], oodScores: [(name: String, scores: [Double])], inAverage: [Bool],
                                       range: Range<Int>, stream: ResampleStream, scoreKey: UInt64,
                                       auprMode: AUPRMode = .averagePrecision) -> Replicates {
        let table = BootstrapSetsTable(idScores: idScores, oodScores: oodScores.map(\.scores))
        let setKeys = oodScores.map { scoreKey ^ ResampleStream.key($0.name) }
        var perSet = [[OODMetrics]](repeating: [], count: oodScores.count)
        var averages: [OODMetrics] = []
        let averaged = inAverage.contains(true)
        var scratch = BootstrapSetsTable.Scratch()
        var counts = [Int32](repeating: 0, count: table.slotCount)
        counts.withUnsafeMutableBufferPointer { all in
            for r in range {
                stream.fill(UnsafeMutableBufferPointer(rebasing: all[0..<table.idCount]), key: scoreKey, replicate: r)
                var start = table.idCount
                for (s, n) in table.oodCounts.enumerated() {
                    stream.fill(UnsafeMutableBufferPointer(rebasing: all[start..<(start + n)]), key: setKeys[s], replicate: r)
                    start += n
                }
                let rows = table.metrics(counts: UnsafeBufferPointer(all), scratch: &scratch, auprMode: auprMode)
                for (s, m) in rows.enumerated() { perSet[s].append(m) }
                if averaged { averages.append(OODMetrics.average(zip(rows, inAverage).filter(\.1).map(\.0))) }
            }
        }
        return Replicates(perSet: perSet, average: averages)
    }

    /// The percentile intervals of a full set of replicates.
    public static func summarize(_ r: Replicates, level: Double = 0.95) -> Result {
        Result(perSet: r.perSet.map { intervals($0, level: level) }, average: r.average.isEmpty ? nil : intervals(r.average, level: level))
    }

    /// The percentile interval of each metric over replicates.
    public static func intervals(_ replicates: [OODMetrics], level: Double) -> MetricIntervals {
        func ci(_ values: [Double]) -> ConfidenceInterval {
            let sorted = values.sorted()
            return ConfidenceInterval(lower: quantile(sorted, (1 - level) / 2), upper: quantile(sorted, 1 - (1 - level) / 2))
        }
        return MetricIntervals(auroc: ci(replicates.map(\.auroc)), auprIn: ci(replicates.map(\.auprIn)),
                               auprOut: ci(replicates.map(\.auprOut)), fpr95: ci(replicates.map(\.fpr95)))
    }

    /// The q-quantile of ascending `sorted` by linear interpolation between order statistics
    /// (numpy's default, Hyndman & Fan type 7): position q * (n - 1).
    public static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        precondition(!sorted.isEmpty, "quantile of an empty sample")
        let pos = q * Double(sorted.count - 1)
        let lo = Int(pos.rounded(.down)), hi = min(lo + 1, sorted.count - 1)
        return sorted[lo] + (pos - Double(lo)) * (sorted[hi] - sorted[lo])
    }
}
