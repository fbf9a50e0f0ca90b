import Distributed
import Foundation
import OODDetection

/// Bootstrap confidence intervals of an evaluation's metrics (`evaluate.bootstrap` replicates):
/// percentile intervals, stratified (ID and each OOD set resampled separately), the ID resample
/// shared by every OOD set of a replicate so the average over sets gets an interval too. Replicate
/// r is a pure function of (run seed, score, set, r), so the ranks split the replicates into
/// contiguous ranges, gather the replicate metrics in replicate order and take the same
/// percentiles: the intervals are the same on every rank and for any number of ranks.
extension OODEvaluation {
    /// Intervals per score: one per OOD set (in `sets` order) and one for the average over the
    /// real sets. Collective.
    /// - Parameters:
    ///   - idScores / oodScores: the gathered per-sample scores of the report.
    ///   - replicates: B > 0.
    ///   - seed: the run seed; the stream of (score, set) is keyed from it.
    static func bootstrapIntervals(kinds: [ScoreKind], idScores: SetScores, sets: [OODSet], oodScores: [String: SetScores],
                                   fprMode: FPRMode, excludeNonFinite: Bool, replicates: Int, seed: Int,
                                   comm: Communicator, auprMode: AUPRMode = .averagePrecision) throws -> [ScoreKind: BootstrapIntervals.Result] {
        let w = comm.worldSize
        let share = (replicates + w - 1) / w
        func range(_ rank: Int) -> Range<Int> { min(replicates, rank * share)..<min(replicates, (rank + 1) * share) }
        let inAverage = sets.map { !$0.synthetic }
        let averaged = inAverage.contains(true)
        let rowsPerReplicate = sets.count + (averaged ? 1 : 0)
        let stream = ResampleStream(seed: UInt64(seed))
        func finite(_ v: [Double]) -> [Double] { excludeNonFinite ? v.filter(\.isFinite) : v }
        // This rank's replicates of every score, flattened: kind, replicate, set (then average), 4 metrics.
        var mine: [Double] = []
        for kind in kinds {
            let r = BootstrapIntervals.replicateMetrics(
                idScores: finite(idScores.scores[kind]!), oodScores: sets.map { ($0.name, finite(oodScores[$0.name]!.scores[kind]!)) },
                inAverage: inAverage, fprMode: fprMode, range: range(comm.rank), stream: stream, scoreKey: ResampleStream.key(kind.rawValue),
                auprMode: auprMode)
            for i in 0..<range(comm.rank).count {
                for s in 0..<sets.count { mine += values(r.perSet[s][i]) }
                if averaged { mine += values(r.average[i]) }
            }
        }
        let (all, counts) = try mine.withUnsafeBufferPointer { try comm.allgatherv($0) }
        var replicatesByKind = [BootstrapIntervals.Replicates](repeating: .init(perSet: Array(repeating: [], count: sets.count), average: []),
                                                               count: kinds.count)
        var offset = 0
        for rank in 0..<w {
            let n = range(rank).count
            precondition(counts[rank] == kinds.count * n * rowsPerReplicate * 4, "bootstrap: rank \(rank) sent \(counts[rank]) values")
            for k in kinds.indices {
                for _ in 0..<n {
                    for s in 0..<sets.count {
                        replicatesByKind[k].perSet[s].append(metrics(all, offset, fprMode))
                        offset += 4
                    }
                    if averaged {
                        replicatesByKind[k].average.append(metrics(all, offset, fprMode))
                        offset += 4
                    }
                }
            }
        }
        var out: [ScoreKind: BootstrapIntervals.Result] = [:]
        for (k, kind) in kinds.enumerated() { out[kind] = BootstrapIntervals.summarize(replicatesByKind[k]) }
        return out
    }

    static func values(_ m: OODMetrics) -> [Double] { [m.auroc, m.auprIn, m.auprOut, m.fpr95] }

    static func metrics(_ v: [Double], _ i: Int, _ mode: FPRMode) -> OODMetrics {
        OODMetrics(auroc: v[i], auprIn: v[i + 1], auprOut: v[i + 2], fpr95: v[i + 3], nID: 0, nOOD: 0, fprMode: mode)
    }
}
