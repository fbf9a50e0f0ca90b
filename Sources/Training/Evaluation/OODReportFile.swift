import Foundation
import OODDetection

extension OODReport {
    /// Reads back the metrics of an evaluation from its `ood.json` (written by
    /// ``OODEvaluation/write(_:to:title:)``): accuracy, per-set rows with their intervals,
    /// averages, the FPR95 convention, score order and cost. Per-sample scores and fitted
    /// detectors are not in ood.json (they stay empty); `settings` is the caller's.
    /// Used when a resumed pipeline reuses a finished evaluation and by `umtrain compare`.
    ///
    /// - Throws: ``ConfigError`` naming the file when it is missing or not an ood.json.
    public static func read(_ path: String, settings: EvaluateSection = EvaluateSection()) throws -> OODReport {
        func bad(_ what: String) -> ConfigError {
            .invalidValue(file: path, key: what, expected: "an ood.json written by umtrain evaluate", actual: "missing or malformed",
                          hint: "re-run the evaluation (umtrain evaluate, or the pipeline with --resume).")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError.invalidValue(file: path, key: "ood.json", expected: "an existing file", actual: "missing or unreadable",
                                           hint: "run umtrain evaluate first.")
        }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { throw bad("ood.json") }
        func num(_ v: Any?) -> Double { (v as? NSNumber)?.doubleValue ?? .nan }
        guard let modeName = json["fpr_mode"] as? String, let mode = FPRMode(rawValue: modeName) else { throw bad("fpr_mode") }
        let auprMode = (json["aupr_mode"] as? String).flatMap(AUPRMode.init(rawValue:)) ?? .averagePrecision
        func metrics(_ d: [String: Any]) -> OODMetrics {
            OODMetrics(auroc: num(d["auroc"]), auprIn: num(d["aupr_in"]), auprOut: num(d["aupr_out"]), fpr95: num(d["fpr95"]),
                       nID: (d["n_id"] as? NSNumber)?.int64Value ?? 0, nOOD: (d["n_ood"] as? NSNumber)?.int64Value ?? 0, fprMode: mode,
                       excludedID: (d["excluded_id"] as? NSNumber)?.int64Value ?? 0,
                       excludedOOD: (d["excluded_ood"] as? NSNumber)?.int64Value ?? 0, auprMode: auprMode)
        }
        func intervals(_ d: [String: Any]) -> MetricIntervals? {
            guard let i = d["intervals"] as? [String: Any] else { return nil }
            func ci(_ k: String) -> ConfidenceInterval {
                let p = i[k] as? [Any] ?? []
                return ConfidenceInterval(lower: num(p.first), upper: num(p.count > 1 ? p[1] : nil))
            }
            return MetricIntervals(auroc: ci("auroc"), auprIn: ci("aupr_in"), auprOut: ci("aupr_out"), fpr95: ci("fpr95"))
        }
        guard let rowList = json["rows"] as? [[String: Any]], let averageMap = json["average_real"] as? [String: [String: Any]] else {
            throw bad("rows")
        }
        var rows: [OODRow] = []
        var order: [ScoreKind] = []
        for r in rowList {
            guard let name = r["score"] as? String, let kind = ScoreKind(rawValue: name), let set = r["ood_set"] as? String else {
                throw bad("rows[].score")
            }
            if !order.contains(kind) { order.append(kind) }
            rows.append(OODRow(score: kind, set: set, synthetic: r["synthetic"] as? Bool ?? false, metrics: metrics(r),
                               group: r["group"] as? String ?? "", intervals: intervals(r)))
        }
        var averages: [ScoreKind: OODMetrics] = [:], averageIntervals: [ScoreKind: MetricIntervals] = [:]
        for (name, d) in averageMap {
            guard let kind = ScoreKind(rawValue: name) else { continue }
            averages[kind] = metrics(d)
            averageIntervals[kind] = intervals(d)
            if !order.contains(kind) { order.append(kind) }
        }
        if let stored = json["score_order"] as? [String] { order = stored.compactMap(ScoreKind.init(rawValue:)) }
        var report = OODReport(idAccuracy: num(json["id_accuracy"]), idLoss: num(json["id_loss"]), rows: rows, fprMode: mode,
                               averages: averages, scoreOrder: order, idScores: SetScores(ids: [], scores: [:]), oodScores: [:],
                               fitted: OODEvaluation.Fitted(), settings: settings, tuning: nil)
        report.averageIntervals = averageIntervals
        report.auprMode = auprMode
        report.groupOrder = json["group_order"] as? [String] ?? []
        for (name, groups) in json["group_averages"] as? [String: [String: [String: Any]]] ?? [:] {
            guard let kind = ScoreKind(rawValue: name) else { continue }
            for (g, d) in groups { report.groupAverages[kind, default: [:]][g] = metrics(d) }
        }
        report.bootstrapReplicates = ((json["bootstrap"] as? [String: Any])?["replicates"] as? NSNumber)?.intValue ?? 0
        if let costs = json["cost_seconds"] as? [String: Any] {
            let c = EvaluationCost()
            for (phase, v) in costs.sorted(by: { $0.key < $1.key }) { c.add(phase, num(v)) }
            report.cost = c
        }
        return report
    }
}
