import Foundation
import OODDetection

/// summary.md: baseline vs UM vs UMAP vs the plain fine-tuning control.
public enum Summary {
    /// Mean and spread (sample standard deviation) over seeds of ID accuracy and the averaged
    /// metrics, per score and model.
    public static func seeds(config: RunConfig, results: [(seed: Int, reports: [(label: String, report: OODReport)])]) -> String {
        func ms(_ v: [Double]) -> String {
            let finite = v.filter(\.isFinite)
            guard !finite.isEmpty else { return "n/a" }
            let m = finite.reduce(0, +) / Double(finite.count)
            let sd = finite.count > 1 ? (finite.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(finite.count - 1)).squareRoot() : 0
            return String(format: "%.2f ± %.2f", 100 * m, 100 * sd)
        }
        var s = "# Summary over seeds: \(config.name)\n\n"
        s += "Seeds \(results.map { String($0.seed) }.joined(separator: ", ")) (runs \(config.name)-s<seed>/). "
            + "Mean ± sample standard deviation over seeds, in percent; metrics averaged over the real OOD sets "
            + "(ID positive; FPR95 \(results.first?.reports.first?.1.fprMode.label ?? "strict")).\n\n"
        let kinds = results.first?.reports.first?.1.scoreOrder ?? []
        let models = results.first?.reports.map(\.0) ?? []
        s += "| score | model | ID acc | AUROC | AUPR-In | FPR95 | seeds |\n|---|---|---|---|---|---|---|\n"
        for k in kinds {
            for model in models {
                var acc: [Double] = [], auroc: [Double] = [], aupr: [Double] = [], fpr: [Double] = []
                for r in results {
                    guard let rep = r.reports.first(where: { $0.0 == model })?.1, let m = rep.averages[k] else { continue }
                    acc.append(rep.idAccuracy); auroc.append(m.auroc); aupr.append(m.auprIn); fpr.append(m.fpr95)
                }
                guard !acc.isEmpty else { continue }
                s += "| \(k) | \(model) | \(ms(acc)) | \(ms(auroc)) | \(ms(aupr)) | \(ms(fpr)) | \(acc.count) |\n"
            }
        }
        s += "\nModels missing from a seed (UM/UMAP skipped as uncalibrated) are averaged over the seeds that have them; see each run's summary.md.\n"
        return s
    }

    public static func markdown(config: RunConfig, reports: [(label: String, report: OODReport)], estimate: EstimateReport?, skipReason: String?,
                         timings: [(String, Double)], worldSize: Int) -> String {
        func p2(_ x: Double) -> String { x.isFinite ? String(format: "%.2f", 100 * x) : "n/a" }
        var s = "# Summary: \(config.name)\n\n"
        s += "Model \(config.model.arch), ID data format \(config.data.format) (\(config.data.trainImages)); \(worldSize) MPI rank(s). "
        if let e = estimate {
            s += "Loss constraint xi = \(String(format: "%.4f", e.xi)) nats (median of \(e.ratios.first { $0.keepRatio == e.keepRatio }?.xiPerMask.count ?? 0) masks at keep \(e.keepRatio)); "
                + "training loss \(String(format: "%.4f", e.trainLoss)), held-out loss \(String(format: "%.4f", e.heldoutLoss)); "
                + "\(e.atypicalCount) atypical samples (\(e.rule)).\n\n"
        }
        if let r = skipReason { s += "**UM and UMAP were skipped:** \(r)\n\n" }
        let mode = reports.first?.1.fprMode ?? .strict
        s += "Metrics in percent, averaged (unweighted) over the real OOD sets; ID is the positive class for AUROC and AUPR-In; "
            + "FPR95: \(mode.label). Synthetic noise sets are shown apart. "
            + (reports.first.map { OODEvaluation.intervalNote($0.report) } ?? "") + "\n\n"
        let kinds = reports.first?.1.scoreOrder ?? []
        s += "| score | model | ID acc | AUROC | AUPR-In | FPR95 |\n|---|---|---|---|---|---|\n"
        for k in kinds {
            for (label, r) in reports {
                guard let m = r.averages[k] else { continue }
                let ci = r.averageIntervals[k]
                s += "| \(k) | \(label) | \(p2(r.idAccuracy)) | \(OODEvaluation.withInterval(m.auroc, ci?.auroc)) | "
                    + "\(OODEvaluation.withInterval(m.auprIn, ci?.auprIn)) | \(OODEvaluation.withInterval(m.fpr95, ci?.fpr95)) |\n"
            }
        }
        let synthetic = Set(reports.first?.1.rows.filter(\.synthetic).map(\.set) ?? [])
        if !synthetic.isEmpty {
            s += "\nSynthetic sets (\(synthetic.sorted().joined(separator: ", "))), AUROC / FPR95 per model, Energy score:\n\n"
            s += "| model | " + synthetic.sorted().joined(separator: " | ") + " |\n|---|" + synthetic.map { _ in "---|" }.joined() + "\n"
            for (label, r) in reports {
                let cells = synthetic.sorted().map { name -> String in
                    guard let row = r.rows.first(where: { $0.set == name && $0.score == .energy }) else { return "n/a" }
                    return "\(p2(row.metrics.auroc)) / \(p2(row.metrics.fpr95))"
                }
                s += "| \(label) | " + cells.joined(separator: " | ") + " |\n"
            }
        }
        s += "\nStage wall times: " + timings.map { "\($0.0) \(String(format: "%.0f", $0.1)) s" }.joined(separator: ", ") + ".\n"
        s += "\nPer-set tables, per-sample scores and plots: evaluate/<model>/reports/.\n"
        return s
    }
}
