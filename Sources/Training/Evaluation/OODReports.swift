import Datasets
import Distributed
import Foundation
import NeuralNetwork
import OODDetection
import SafeTensors
import TensorCore

/// The reports of one evaluation: ood.md, ood.csv, ood.json, per-sample scores and plots.
extension OODEvaluation {
    static func p2(_ x: Double) -> String { x.isFinite ? String(format: "%.2f", 100 * x) : "n/a" }

    /// A metric in percent with its interval, "73.11 [71.20, 74.93]" (the value alone without one).
    static func withInterval(_ x: Double, _ ci: ConfidenceInterval?) -> String {
        guard let ci else { return p2(x) }
        return "\(p2(x)) [\(p2(ci.lower)), \(p2(ci.upper))]"
    }

    /// The sentence that says what the brackets are.
    static func intervalNote(_ r: OODReport) -> String {
        r.bootstrapReplicates > 0
            ? "Brackets: 95% percentile-bootstrap intervals (\(r.bootstrapReplicates) replicates; ID and OOD samples resampled separately; "
                + "for averages the ID set is resampled once per replicate and every OOD set within it; docs/metrics.md). "
            : ""
    }

    /// The Markdown report (conventions first, then per-set rows, then averages).
    public static func markdown(_ r: OODReport, title: String) -> String {
        var s = "# \(title)\n\n"
        s += "ID accuracy \(p2(r.idAccuracy))% (test loss \(String(format: "%.4f", r.idLoss)) nats, \(r.idScores.ids.count) images).\n\n"
        s += "Conventions: every score is oriented higher = more in-distribution. AUROC and AUPR-In take ID as the positive "
            + "class; AUPR-Out takes OOD as positive with negated scores. \(r.auprMode.label). "
            + "FPR95: \(r.fprMode.label). All values in percent. " + intervalNote(r) + "\n\n"
        s += "## Average over real OOD sets (unweighted; synthetic sets excluded)\n\n"
        s += "| score | AUROC | AUPR-In | AUPR-Out | FPR95 |\n|---|---|---|---|---|\n"
        for k in r.scoreOrder {
            guard let m = r.averages[k] else { continue }
            let ci = r.averageIntervals[k]
            s += "| \(k) | \(withInterval(m.auroc, ci?.auroc)) | \(withInterval(m.auprIn, ci?.auprIn)) | "
                + "\(withInterval(m.auprOut, ci?.auprOut)) | \(withInterval(m.fpr95, ci?.fpr95)) |\n"
        }
        if !r.groupOrder.isEmpty {
            s += "\n## Average per group (unweighted over the group's real sets; no intervals)\n\n"
            s += "| score | group | sets | AUROC | AUPR-In | AUPR-Out | FPR95 |\n|---|---|---|---|---|---|---|\n"
            for k in r.scoreOrder {
                for g in r.groupOrder {
                    guard let m = r.groupAverages[k]?[g] else { continue }
                    let members = r.rows.filter { $0.score == k && !$0.synthetic && $0.group == g }.map(\.set)
                    s += "| \(k) | \(g) | \(members.joined(separator: ", ")) | \(p2(m.auroc)) | \(p2(m.auprIn)) | \(p2(m.auprOut)) | \(p2(m.fpr95)) |\n"
                }
            }
        }
        s += "\n## Per set\n\n| score | OOD set | synthetic | AUROC | AUPR-In | AUPR-Out | FPR95 | n_id | n_ood |\n|---|---|---|---|---|---|---|---|---|\n"
        for row in r.rows {
            let m = row.metrics
            let ci = row.intervals
            s += "| \(row.score) | \(row.set) | \(row.synthetic ? "yes" : "no") | \(withInterval(m.auroc, ci?.auroc)) | "
                + "\(withInterval(m.auprIn, ci?.auprIn)) | \(withInterval(m.auprOut, ci?.auprOut)) | \(withInterval(m.fpr95, ci?.fpr95)) | "
                + "\(m.nID) | \(m.nOOD) |\n"
        }
        if r.cost.total > 0 {
            s += "\n## Cost (wall seconds, max over ranks)\n\n" + costTable(r.cost, scores: r.scoreOrder)
        }
        return s
    }

    /// The cost table: the shared phases, then each score's own phases (what selecting it in
    /// `evaluate.scores` adds).
    static func costTable(_ c: EvaluationCost, scores: [ScoreKind]) -> String {
        var t = "| phase | seconds |\n|---|---|\n"
        let own = Set(scores.flatMap { k in c.order.filter { $0.hasPrefix(k.rawValue + ":") } })
        for p in c.order where !own.contains(p) { t += "| \(p) | \(fmt(c.seconds[p]!, 2)) |\n" }
        for k in scores {
            let parts = c.order.filter { $0.hasPrefix(k.rawValue + ":") }.map { "\($0.dropFirst(k.rawValue.count + 2)) \(fmt(c.seconds[$0]!, 2))" }
            t += "| \(k.rawValue) (\(parts.joined(separator: ", "))) | \(fmt(c.seconds(of: k), 2)) |\n"
        }
        return t + "| total | \(fmt(c.total, 2)) |\n"
    }

    /// Writes ood.md, ood.csv, ood.json, per-sample scores (scores/<set>.csv), tuning.json (with
    /// tuning) and SVG plots into `dir` (rank 0).
    public static func write(_ r: OODReport, to dir: String, title: String) throws {
        try FileManager.default.createDirectory(atPath: dir + "/scores", withIntermediateDirectories: true)
        try AtomicFile.write(markdown(r, title: title), to: dir + "/ood.md")
        var csv = "score,ood_set,synthetic,auroc,aupr_in,aupr_out,fpr95,n_id,n_ood,fpr_mode,"
            + "auroc_lo,auroc_hi,aupr_in_lo,aupr_in_hi,aupr_out_lo,aupr_out_hi,fpr95_lo,fpr95_hi,aupr_mode,group\n"
        func num(_ x: Double) -> String { x.isFinite ? String(x) : "" }
        func cis(_ c: MetricIntervals?) -> String {
            guard let c else { return ",,,,,,," }
            return [c.auroc, c.auprIn, c.auprOut, c.fpr95].map { "\(num($0.lower)),\(num($0.upper))" }.joined(separator: ",")
        }
        for row in r.rows {
            let m = row.metrics
            csv += "\(row.score),\(row.set),\(row.synthetic),\(num(m.auroc)),\(num(m.auprIn)),\(num(m.auprOut)),\(num(m.fpr95)),\(m.nID),\(m.nOOD),\(r.fprMode.rawValue),\(cis(row.intervals)),\(r.auprMode.rawValue),\(row.group)\n"
        }
        for k in r.scoreOrder {
            if let m = r.averages[k] {
                csv += "\(k),average_real,false,\(num(m.auroc)),\(num(m.auprIn)),\(num(m.auprOut)),\(num(m.fpr95)),\(m.nID),\(m.nOOD),\(r.fprMode.rawValue),\(cis(r.averageIntervals[k])),\(r.auprMode.rawValue),\n"
            }
            for g in r.groupOrder {
                guard let m = r.groupAverages[k]?[g] else { continue }
                csv += "\(k),average_\(g),false,\(num(m.auroc)),\(num(m.auprIn)),\(num(m.auprOut)),\(num(m.fpr95)),\(m.nID),\(m.nOOD),\(r.fprMode.rawValue),\(cis(nil)),\(r.auprMode.rawValue),\(g)\n"
            }
        }
        try AtomicFile.write(csv, to: dir + "/ood.csv")
        func jnum(_ x: Double) -> Any { x.isFinite ? x : NSNull() }
        func jm(_ m: OODMetrics, _ c: MetricIntervals? = nil) -> [String: Any] {
            var d: [String: Any] = ["auroc": jnum(m.auroc), "aupr_in": jnum(m.auprIn), "aupr_out": jnum(m.auprOut), "fpr95": jnum(m.fpr95),
                                    "n_id": m.nID, "n_ood": m.nOOD, "excluded_id": m.excludedID, "excluded_ood": m.excludedOOD]
            if let c {
                d["intervals"] = ["auroc": [jnum(c.auroc.lower), jnum(c.auroc.upper)], "aupr_in": [jnum(c.auprIn.lower), jnum(c.auprIn.upper)],
                                  "aupr_out": [jnum(c.auprOut.lower), jnum(c.auprOut.upper)], "fpr95": [jnum(c.fpr95.lower), jnum(c.fpr95.upper)]]
            }
            return d
        }
        let json: [String: Any] = [
            "id_accuracy": jnum(r.idAccuracy), "id_loss": jnum(r.idLoss), "fpr_mode": r.fprMode.rawValue,
            "fpr_mode_label": r.fprMode.label, "positive_class": "ID (AUROC, AUPR-In); OOD for AUPR-Out",
            "aupr_mode": r.auprMode.rawValue, "aupr_mode_label": r.auprMode.label,
            "group_order": r.groupOrder,
            "group_averages": Dictionary(uniqueKeysWithValues: r.groupAverages.map { k, groups in
                (k.rawValue, Dictionary(uniqueKeysWithValues: groups.map { ($0.key, jm($0.value)) })) }),
            "rows": r.rows.map { ["score": $0.score.rawValue, "ood_set": $0.set, "synthetic": $0.synthetic, "group": $0.group]
                .merging(jm($0.metrics, $0.intervals)) { a, _ in a } },
            "average_real": Dictionary(uniqueKeysWithValues: r.averages.map { ($0.key.rawValue, jm($0.value, r.averageIntervals[$0.key])) }),
            "bootstrap": ["replicates": r.bootstrapReplicates, "level": 0.95, "method": "percentile, stratified (ID and OOD resampled separately)"],
            "cost_seconds": r.cost.json,
            "score_order": r.scoreOrder.map(\.rawValue),
            "cost_seconds_per_score": Dictionary(uniqueKeysWithValues: r.scoreOrder.map { ($0.rawValue, r.cost.seconds(of: $0)) }),
        ]
        try AtomicFile.write([UInt8](try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])),
                             to: dir + "/ood.json")
        // Per-sample scores: one CSV per set (id + one column per score).
        try AtomicFile.write(r.idScores.csv(columns: r.scoreOrder), to: dir + "/scores/id_test.csv")
        for (name, s) in r.oodScores { try AtomicFile.write(s.csv(columns: r.scoreOrder), to: dir + "/scores/\(name).csv") }
        if let tuning = r.tuning {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write([UInt8](try enc.encode(tuning)), to: dir + "/tuning.json")
        }
        // Plots: per score, ROC curves for every set and score histograms.
        let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
        for k in r.scoreOrder {
            let idv = r.idScores.scores[k]!
            var curves: [(name: String, color: String, points: [(Double, Double)])] = []
            var series: [SVGPlot.Series] = [.init(name: "ID test", color: "#000000", values: idv)]
            for (i, name) in r.oodScores.keys.sorted().enumerated() {
                let oodv = r.oodScores[name]!.scores[k]!
                curves.append((name, palette[i % palette.count], rocPoints(id: idv, ood: oodv)))
                series.append(.init(name: name, color: palette[i % palette.count], values: oodv))
            }
            try AtomicFile.write(SVGPlot.curves(title: "ROC, score \(k) (ID positive)", xLabel: "FPR (OOD accepted)",
                                                yLabel: "TPR (ID accepted)", curves: curves), to: dir + "/roc_\(k).svg")
            let finite = series.flatMap(\.values).filter(\.isFinite).sorted()
            let lo = finite.isEmpty ? 0 : finite[finite.count / 200], hi = finite.isEmpty ? 1 : finite[finite.count - 1 - finite.count / 200]
            try AtomicFile.write(SVGPlot.histogram(title: "score \(k) (higher = ID)", xLabel: k.rawValue, series: series, bins: 60,
                                                   range: lo...max(hi, lo + 1e-9)), to: dir + "/hist_\(k).svg")
        }
    }

    /// ROC points (FPR, TPR) with ID positive, at up to ~200 thresholds.
    static func rocPoints(id: [Double], ood: [Double]) -> [(Double, Double)] {
        let all = (id.map { ($0, true) } + ood.map { ($0, false) }).filter { $0.0.isFinite }.sorted { $0.0 > $1.0 }
        let nPos = Double(all.filter { $0.1 }.count), nNeg = Double(all.count) - nPos
        var tp = 0.0, fp = 0.0
        var pts: [(Double, Double)] = [(0, 0)]
        let stride = max(1, all.count / 200)
        for (i, s) in all.enumerated() {
            if s.1 { tp += 1 } else { fp += 1 }
            let lastOfTie = i + 1 == all.count || all[i + 1].0 != s.0
            if lastOfTie && (i % stride == 0 || i + 1 == all.count) { pts.append((fp / max(nNeg, 1), tp / max(nPos, 1))) }
        }
        return pts
    }
}
