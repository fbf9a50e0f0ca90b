/// The bootstrap replicate of several OOD sets against one shared ID set in ONE descending pass
/// (strict FPR95 only), instead of one pass per set that revisits every ID sample.
///
/// All samples (ID and every set) are sorted once. In a replicate, every ID tie group updates
/// each set's AUPR-In, every OOD group updates only its own set's AUROC and AUPR-Out, and the
/// strict FPR95 threshold, which depends on the ID counts alone, is the same group for every
/// set. Results equal ``BootstrapTable/metrics(counts:fprMode:scratch:)`` per set bit for bit
/// (tested): AUROC is accumulated from the OOD side, sum over OOD groups of
/// b * (2 * ID above + ID tied), which counts the same pairs as the ID-side sum, and both are
/// integers below 2^53, so exact in Double whatever the order; AUPR terms are the same
/// expressions summed in the same order.
public struct BootstrapSetsTable: Sendable {
    /// Every sample in descending score order, as its slot in the combined count vector
    /// (ID samples first, then each set's, in set order).
    let order: [Int32]
    /// The set of `order[k]`: -1 for ID, else the OOD set index.
    let setOf: [Int16]
    /// Whether `order[k]` is the last of its tie group (equal scores across ID and all sets).
    let groupEnd: [Bool]
    public let idCount: Int
    public let oodCounts: [Int]

    /// The combined count vector's length: idCount + the sets' sizes.
    public var slotCount: Int { idCount + oodCounts.reduce(0, +) }

    /// One sort of all samples. Precondition: every score finite, every set non-empty, fewer than
    /// 32768 sets and 2^31 samples.
    public init(idScores: [Double], oodScores: [[Double]]) {
        precondition(!idScores.isEmpty && !oodScores.isEmpty && oodScores.allSatisfy { !$0.isEmpty },
                     "BootstrapSetsTable needs a non-empty ID set and non-empty OOD sets")
        precondition(oodScores.count < Int(Int16.max), "too many OOD sets")
        var tagged: [(score: Double, slot: Int32, set: Int16)] = []
        tagged.reserveCapacity(idScores.count + oodScores.reduce(0) { $0 + $1.count })
        for (i, s) in idScores.enumerated() {
            precondition(s.isFinite, "BootstrapSetsTable needs finite scores")
            tagged.append((s, Int32(i), -1))
        }
        var base = idScores.count
        for (k, set) in oodScores.enumerated() {
            for (j, s) in set.enumerated() {
                precondition(s.isFinite, "BootstrapSetsTable needs finite scores")
                tagged.append((s, Int32(base + j), Int16(k)))
            }
            base += set.count
        }
        tagged.sort { $0.score > $1.score }
        order = tagged.map(\.slot)
        setOf = tagged.map(\.set)
        groupEnd = tagged.indices.map { $0 + 1 == tagged.count || tagged[$0 + 1].score != tagged[$0].score }
        idCount = idScores.count
        oodCounts = oodScores.map(\.count)
    }

    /// Reusable per-replicate state (no allocation per replicate).
    public struct Scratch {
        /// Per set: the current group's OOD count; and in blocks of `sets` Doubles: aurocTwice,
        /// apIn, strict FPR95, FP so far (exact in Double below 2^53, contiguous per kind so the
        /// per-ID-group loop over the sets vectorises).
        var counters: [Int64] = []
        var sums: [Double] = []
        var touched: [Int32] = []
        /// AUPR-Out terms of all sets, set s from offset `termBase[s]`.
        var terms: [Double] = []
        var termBase: [Int] = []
        var termCount: [Int] = []
        public init() {}
    }

    /// The strict-FPR95 metrics of every set for the resample with `counts` (combined vector:
    /// `slotCount` entries). Precondition: the ID total and every set's total > 0.
    /// Under the trapezoid AUPR, each set also keeps the precision of its previous curve point
    /// (a group holding ID samples or that set's), and AUPR-Out's left height is the precision of
    /// everything strictly below the group, as in ``BootstrapTable``.
    public func metrics(counts: UnsafeBufferPointer<Int32>, scratch: inout Scratch, auprMode: AUPRMode = .averagePrecision) -> [OODMetrics] {
        let trapezoid = auprMode == .trapezoid
        precondition(counts.count == slotCount, "counts must hold slotCount entries")
        let sets = oodCounts.count
        var nID: Int64 = 0
        for i in 0..<idCount { nID &+= Int64(counts[i]) }
        var nOOD = [Int64](repeating: 0, count: sets)
        var base = idCount
        for s in 0..<sets {
            for j in base..<(base + oodCounts[s]) { nOOD[s] &+= Int64(counts[j]) }
            base += oodCounts[s]
        }
        precondition(nID > 0 && nOOD.allSatisfy { $0 > 0 }, "a resample needs samples of every set")
        if scratch.termBase.count != sets {
            scratch.terms = [Double](repeating: 0, count: oodCounts.reduce(0, +))
            scratch.termBase = oodCounts.indices.map { oodCounts[..<$0].reduce(0, +) }
            scratch.touched = [Int32](repeating: 0, count: sets)
        }
        scratch.counters = [Int64](repeating: 0, count: sets)
        scratch.sums = [Double](repeating: 0, count: 5 * sets)
        for s in 0..<sets { scratch.sums[2 * sets + s] = -1; scratch.sums[4 * sets + s] = 1 }
        scratch.termCount = scratch.termBase
        let p = Double(nID)
        let q = nOOD.map(Double.init)
        var tp: Int64 = 0
        var strictDone = false
        order.withUnsafeBufferPointer { o in
        setOf.withUnsafeBufferPointer { setOf in
        groupEnd.withUnsafeBufferPointer { ends in
        scratch.counters.withUnsafeMutableBufferPointer { ctr in
        scratch.sums.withUnsafeMutableBufferPointer { sums in
        scratch.touched.withUnsafeMutableBufferPointer { touched in
        scratch.terms.withUnsafeMutableBufferPointer { terms in
        scratch.termCount.withUnsafeMutableBufferPointer { termCount in
        nOOD.withUnsafeBufferPointer { nOOD in
        q.withUnsafeBufferPointer { q in
            var a: Int64 = 0        // the current group's ID count; its OOD counts are ctr[s]
            var touchedCount = 0
            let auroc = sums.baseAddress!, apIn = auroc + sets, strict = apIn + sets, fpD = strict + sets, previousIn = fpD + sets
            for k in 0..<o.count {
                let c = Int64(truncatingIfNeeded: counts[Int(truncatingIfNeeded: o[k])])
                let s = Int(setOf[k])
                if s < 0 {
                    a &+= c
                } else if c > 0 {
                    if ctr[s] == 0 { touched[touchedCount] = Int32(truncatingIfNeeded: s); touchedCount &+= 1 }
                    ctr[s] &+= c
                }
                guard ends[k] else { continue }
                // OOD side: AUROC pairs, AUPR-Out terms (OOD positive, ascending: TP = the set's
                // OOD at or below, FP = ID at or below).
                for t in 0..<touchedCount {
                    let s = Int(touched[t])
                    let b = ctr[s], fp = Int64(fpD[s])
                    auroc[s] += Double(b) * Double(2 &* tp &+ a)
                    let otp = nOOD[s] &- fp, ofp = nID &- tp
                    let precision = Double(otp) / Double(otp &+ ofp)
                    if trapezoid {
                        let below = otp &- b, belowNeg = ofp &- a
                        let previous = below &+ belowNeg == 0 ? 1.0 : Double(below) / Double(below &+ belowNeg)
                        terms[termCount[s]] = (Double(b) / q[s]) * ((precision + previous) * 0.5)
                    } else {
                        terms[termCount[s]] = (Double(b) / q[s]) * precision
                    }
                    termCount[s] &+= 1
                    fpD[s] += Double(b)
                    // A group without ID samples is still a point of this set's AUPR-In curve.
                    if trapezoid && a == 0 { previousIn[s] = Double(tp) / (Double(tp) + fpD[s]) }
                    ctr[s] = 0
                }
                touchedCount = 0
                guard a > 0 else { continue }
                tp &+= a
                let share = Double(a) / p, tpD = Double(tp)
                // Double(tp) + fp is exact (integers below 2^53): the same value as Double(tp + fp).
                if trapezoid {
                    for s in 0..<sets {
                        let precision = tpD / (tpD + fpD[s])
                        apIn[s] += share * ((precision + previousIn[s]) * 0.5)
                        previousIn[s] = precision
                    }
                } else {
                    for s in 0..<sets { apIn[s] += share * (tpD / (tpD + fpD[s])) }
                }
                // Strict FPR95 (see BootstrapTable): the first threshold with ID recall >= 0.95.
                if !strictDone && 20 &* tp >= 19 &* nID {
                    for s in 0..<sets { strict[s] = fpD[s] / q[s] }
                    strictDone = true
                }
                a = 0
            }
        }}}}}}}}}}
        return (0..<sets).map { s in
            var apOut = 0.0
            for k in stride(from: scratch.termCount[s] - 1, through: scratch.termBase[s], by: -1) { apOut += scratch.terms[k] }
            let strict = scratch.sums[2 * sets + s]
            return OODMetrics(auroc: scratch.sums[s] / (2 * p * q[s]), auprIn: scratch.sums[sets + s], auprOut: apOut,
                              fpr95: strict < 0 ? 1 : strict, nID: nID, nOOD: nOOD[s], fprMode: .strict, auprMode: auprMode)
        }
    }
}
