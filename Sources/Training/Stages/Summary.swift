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

    /// The epoch each seed kept as `best_val_epoch` (from `<run>/train/best_val_epoch.json`),
    /// with its validation AUROC and the final epoch's, so a reader sees whether an intermediate
    /// stage won on validation data (test metrics are in the tables above).
    public static func bestValidationEpochs(seeds: [Int], runRoots: [String], epochs: Int) -> String {
        var s = "## OOD-validation curve: the kept epoch per seed\n\n"
        s += "Selected on validation data only (ID validation split vs the validation OOD sets; never the test sets). "
            + "Curves: seeds-ood-validation.svg here and each run's train/reports/ood_validation.svg.\n\n"
        s += "| seed | best_val_epoch | val AUROC there | val AUROC at the final epoch (\(epochs)) |\n|---|---|---|---|\n"
        for (seed, root) in zip(seeds, runRoots) {
            guard let data = FileManager.default.contents(atPath: root + "/train/best_val_epoch.json"),
                  let r = try? JSONDecoder().decode(BestValidationRecord.self, from: data) else {
                s += "| \(seed) | n/a | | |\n"
                continue
            }
            let last = RunFolder.readMetrics(root + "/train/metrics.jsonl").last { ($0["epoch"] as? Int) == epochs }
            let final = (last?["ood_val_auroc_\(r.score)"] as? Double).map { String(format: "%.2f", 100 * $0) } ?? "n/a"
            s += "| \(seed) | \(r.epoch) | \(r.score) \(String(format: "%.2f", 100 * r.auroc)) | \(final) |\n"
        }
        return s
    }

    /// The OOD-validation curves of several seeds in one SVG: the validation AUROC of `score`
    /// (top) and the held-out loss (bottom) against the epoch, one colour per seed.
    public static func validationCurves(seeds: [Int], runRoots: [String], score: ScoreKind, title: String) -> String {
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
        var top: [SVGPlot.Line] = [], bottom: [SVGPlot.Line] = []
        for (i, (seed, root)) in zip(seeds, runRoots).enumerated() {
            let records = RunFolder.readMetrics(root + "/train/metrics.jsonl")
            func series(_ key: String) -> [(Double, Double)] {
                records.compactMap { r in
                    guard let e = r["epoch"] as? Int, let v = r[key] as? Double, v.isFinite else { return nil }
                    return (Double(e), v)
                }
            }
            let color = colors[i % colors.count]
            top.append(.init(name: "seed \(seed)", color: color, points: series("ood_val_auroc_\(score.rawValue)")))
            bottom.append(.init(name: "seed \(seed) held-out", color: color, points: series("heldout_loss")))
            bottom.append(.init(name: "seed \(seed) train", color: color, points: series("train_loss"), dashed: true))
        }
        return SVGPlot.panels(title: "\(title): OOD-validation \(score.rawValue) AUROC and losses over seeds", xLabel: "epoch",
                              panels: [.init(yLabel: "validation AUROC (\(score.rawValue))", lines: top, yRange: nil),
                                       .init(yLabel: "cross-entropy (nats)", lines: bottom, yRange: nil)])
    }

    public static func markdown(config: RunConfig, reports: [(label: String, report: OODReport)], estimate: EstimateReport?, skipReason: String?,
                         timings: [(String, Double)], worldSize: Int) -> String {
        func p2(_ x: Double) -> String { x.isFinite ? String(format: "%.2f", 100 * x) : "n/a" }
        var s = "# Summary: \(config.name)\n\n"
        s += "Model \(config.model.arch), ID data format \(config.data.format) (\(config.data.trainImages)); \(worldSize) MPI rank(s). "
        if let e = estimate {
            let masks = "median of \(e.ratios.first { $0.keepRatio == e.keepRatio }?.xiPerMask.count ?? 0) masks at keep \(e.keepRatio)"
            let where_ = e.maskXiPosition.isFinite ? String(format: ", %.1f%% of the way from the training to the held-out loss", 100 * e.maskXiPosition) : ""
            s += "Loss constraint xi = \(String(format: "%.4f", e.xi)) nats ("
                + (e.xiRule == "position"
                    ? "estimate.xi_rule position: \(String(format: "%.1f", 100 * (e.xi - e.trainLoss) / (e.heldoutLoss - e.trainLoss)))% of the way; the mask estimate, \(masks), was \(String(format: "%.4f", e.maskXi))\(where_)"
                    : masks + where_) + "); "
                + "training loss \(String(format: "%.4f", e.trainLoss)), held-out loss \(String(format: "%.4f", e.heldoutLoss)); "
                + "\(e.atypicalCount) atypical samples (\(e.rule)).\n\n"
        }
        if let r = skipReason { s += "**Skipped:** \(r)\n\n" }
        if reports.contains(where: { $0.label == "best_val_epoch" }),
           let data = FileManager.default.contents(atPath: config.outputDir + "/" + config.name + "/train/best_val_epoch.json"),
           let b = try? JSONDecoder().decode(BestValidationRecord.self, from: data) {
            s += "`best_val_epoch` is the baseline's training run stopped at epoch \(b.epoch) of \(config.train.epochs): the epoch with the "
                + "best mean \(b.score) AUROC (\(String(format: "%.2f", 100 * b.auroc))) on the validation OOD sets "
                + "(\(b.sets.joined(separator: ", ")); validation data only, never the test sets). It tests the paper's observation that an "
                + "intermediate stage detects OOD better than the final model; read its ID accuracy beside its OOD metrics.\n\n"
        }
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
