import Datasets
import Distributed
import Foundation
import NeuralNetwork
import OODDetection
import SafeTensors
import TensorCore

/// One row of the OOD report.
public struct OODRow: Sendable {
    public var score: ScoreKind
    public var set: String
    public var synthetic: Bool
    public var metrics: OODMetrics
    /// The set's group (empty = none).
    public var group = ""
    /// Bootstrap 95% intervals (nil with `evaluate.bootstrap: 0`).
    public var intervals: MetricIntervals?
}

/// The OOD evaluation of one model.
public struct OODReport: Sendable {
    public var idAccuracy: Double
    public var idLoss: Double
    public var rows: [OODRow]
    public var fprMode: FPRMode
    /// The AUPR convention of every row.
    public var auprMode: AUPRMode = .averagePrecision
    /// Per score and group (`evaluate.ood_sets[].group`), the unweighted mean over the group's
    /// real sets; groups in the order they first appear.
    public var groupAverages: [ScoreKind: [String: OODMetrics]] = [:]
    public var groupOrder: [String] = []
    /// Unweighted mean over the REAL OOD sets, per score.
    public var averages: [ScoreKind: OODMetrics]
    /// Bootstrap 95% intervals of the averages (empty with `evaluate.bootstrap: 0`).
    public var averageIntervals: [ScoreKind: MetricIntervals] = [:]
    /// Bootstrap replicates behind the intervals (0 = none).
    public var bootstrapReplicates = 0
    /// The scores in the configured order (report rows follow it).
    public var scoreOrder: [ScoreKind]
    public var idScores: SetScores
    public var oodScores: [String: SetScores]
    /// The detectors as fitted (and the settings, tuned or not) for `umtrain score`.
    public var fitted: OODEvaluation.Fitted
    public var settings: EvaluateSection
    /// What tuning chose (`evaluate.tune`), nil without tuning.
    public var tuning: TuningRecord?
    /// Where the evaluation's time went, per phase and score (max over ranks).
    public var cost = EvaluationCost()
}

/// Post-hoc OOD detection over MPI: every score is oriented so that higher = more
/// in-distribution; each rank scores its share of fixed batches of consecutive sample ids
/// (the same batches whatever the world size), results are gathered by id, and the
/// detectors' statistics (Mahalanobis class means and covariance, the KNN bank, the ReAct
/// threshold) are fitted from training features gathered by id and summed in id order, so
/// per-sample scores and metrics are bitwise identical for any number of ranks.
public enum OODEvaluation {
    /// Evaluates `model` on the ID test set and every OOD set: detectors tuned (with
    /// `evaluate.tune`, on validation data only) and fitted (on the training ids), every score on
    /// every set, metrics per (score, set) and averages over the real sets. Collective.
    ///
    /// - Parameters:
    ///   - sets: the OOD test sets (``loadSets(_:imageSize:channels:resize:loading:comm:)``).
    ///   - validationOOD: tuning-only OOD sets (never test sets).
    /// - Throws: communicator errors, metric errors on non-finite scores (unless
    ///   `evaluate.exclude_non_finite`), ``ConfigError`` when tuning has no validation split.
    public static func run(model: Classifier, comm: Communicator, config: RunConfig, data: TrainingData, sets: [OODSet],
                           log: (String) -> Void, validationOOD: [OODSet] = []) throws -> OODReport {
        var e = config.evaluate
        var tuning: TuningRecord?
        if e.tune {
            let (tuned, record) = try tune(model: model, comm: comm, config: config, data: data, validationOOD: validationOOD, log: log)
            e = tuned
            tuning = record
        }
        let kinds = e.scores
        let mode = e.fprMode
        let started = Date()
        let cost = EvaluationCost()
        cost.register(EvaluationCost.phases(for: kinds))
        /// Runs a scoring pass, charging the time its own phases do not account for (decoding,
        /// normalising and copying batches) to "batches".
        func pass<T>(_ body: () throws -> T) rethrows -> T {
            let before = cost.total, t0 = Date()
            let r = try body()
            cost.add("batches (decode, normalise)", max(0, Date().timeIntervalSince(t0) - (cost.total - before)))
            return r
        }
        let fitted = try pass { try fit(model: model, comm: comm, data: data, e: e, kinds: kinds, numClasses: config.model.numClasses, cost: cost) }
        log("detector settings: ODIN T \(e.odinTemperature) eps \(e.odinEpsilon), KNN k \(e.knnK), ReAct p\(e.reactPercentile)\(e.tune ? " (tuned on the validation split)" : " (defaults)")")
        // The ID test set's accuracy and loss come from the scoring pass's own forward.
        let idScores = try pass { try score(model: model, comm: comm, data: data, dataset: data.testSet, ids: data.testSet.ids, e: e,
                                            fitted: fitted, kinds: kinds, classify: true, cost: cost) }
        let idEval = idScores.classification!
        var rows: [OODRow] = []
        var oodScores: [String: SetScores] = [:]
        for s in sets {
            comm.phase = "evaluate \(s.name)"
            let sc = try pass { try score(model: model, comm: comm, data: data, dataset: s.dataset, ids: s.dataset.ids, e: e, fitted: fitted,
                                          kinds: kinds, cost: cost) }
            oodScores[s.name] = sc
            try cost.time("metrics") {
                for kind in kinds {
                    let m = try OODMetrics.compute(idScores: idScores.scores[kind]!, oodScores: sc.scores[kind]!, fprMode: mode,
                                                   nonFinite: e.excludeNonFinite ? .exclude : .error, auprMode: e.aupr)
                    rows.append(OODRow(score: kind, set: s.name, synthetic: s.synthetic, metrics: m, group: s.group))
                }
            }
        }
        var averages: [ScoreKind: OODMetrics] = [:]
        for kind in kinds {
            let real = rows.filter { $0.score == kind && !$0.synthetic }.map(\.metrics)
            if !real.isEmpty { averages[kind] = OODMetrics.average(real) }
        }
        var report = OODReport(idAccuracy: idEval.accuracy, idLoss: idEval.loss, rows: rows, fprMode: mode, averages: averages,
                               scoreOrder: kinds, idScores: idScores, oodScores: oodScores, fitted: fitted, settings: e, tuning: tuning)
        report.auprMode = e.aupr
        report.groupOrder = sets.filter { !$0.synthetic && !$0.group.isEmpty }.map(\.group).reduce(into: []) { if !$0.contains($1) { $0.append($1) } }
        for kind in kinds {
            for g in report.groupOrder {
                let members = rows.filter { $0.score == kind && !$0.synthetic && $0.group == g }.map(\.metrics)
                if !members.isEmpty { report.groupAverages[kind, default: [:]][g] = OODMetrics.average(members) }
            }
        }
        let scored = Date().timeIntervalSince(started)
        if e.bootstrap > 0 && !sets.isEmpty {
            let t0 = Date()
            let intervals = try bootstrapIntervals(kinds: kinds, idScores: idScores, sets: sets, oodScores: oodScores, fprMode: mode,
                                                   excludeNonFinite: e.excludeNonFinite, replicates: e.bootstrap, seed: config.seed,
                                                   comm: comm, auprMode: e.aupr)
            for i in report.rows.indices {
                let row = report.rows[i]
                report.rows[i].intervals = intervals[row.score]?.perSet[sets.firstIndex { $0.name == row.set }!]
            }
            for kind in kinds { report.averageIntervals[kind] = intervals[kind]?.average }
            report.bootstrapReplicates = e.bootstrap
            let seconds = Date().timeIntervalSince(t0)
            cost.add("bootstrap intervals", seconds)
            log("bootstrap intervals: \(e.bootstrap) replicates x \(kinds.count) scores x \(sets.count) sets in \(fmt(seconds, 1)) s "
                + "(\(fmt(100 * seconds / (scored + seconds), 1))% of the evaluation)")
        }
        try cost.maxOverRanks(comm)
        report.cost = cost
        log("OOD evaluation: \(sets.count) sets x \(kinds.count) scores in \(fmt(Date().timeIntervalSince(started), 1)) s")
        log("cost (max over ranks): " + cost.summaryLine(scores: kinds))
        return report
    }
}
