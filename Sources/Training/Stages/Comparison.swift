import Foundation
import OODDetection

/// Paired statistics over seeds: for every score and method, the per-seed difference of each
/// averaged metric against the baseline and against the cross-entropy control of the same seed,
/// their mean, a 95% Student-t interval over seeds and the count of seeds that improved
/// (`PairedDifference`). Used by `pipeline --seeds` (seeds-summary.md) and `umtrain compare`
/// over existing run folders, so runs of different commits can be compared too.
public enum Comparison {
    /// One run (one seed): per model label, the ID accuracy and the averaged metrics per score.
    public struct Run: Sendable {
        public var name: String
        public var models: [String: (idAccuracy: Double, averages: [ScoreKind: OODMetrics])]
        public var scoreOrder: [ScoreKind]

        public init(name: String, reports: [(label: String, report: OODReport)]) {
            self.name = name
            models = Dictionary(uniqueKeysWithValues: reports.map { ($0.label, ($0.report.idAccuracy, $0.report.averages)) })
            scoreOrder = reports.first?.report.scoreOrder ?? []
        }

        /// Reads `<folder>/evaluate/<model>/reports/ood.json` of every evaluated model.
        /// - Throws: ``ConfigError`` naming the folder or file when it holds no evaluation.
        public init(folder: String) throws {
            name = (folder as NSString).lastPathComponent
            models = [:]
            scoreOrder = []
            let evaluate = folder + "/evaluate"
            guard let labels = try? FileManager.default.contentsOfDirectory(atPath: evaluate).sorted(), !labels.isEmpty else {
                throw ConfigError.invalidValue(file: folder, key: "evaluate/", expected: "a run folder with evaluate/<model>/reports/ood.json",
                                               actual: "no evaluate folder", hint: "give the folders a pipeline run wrote, e.g. runs/fmnist-quick-s0.")
            }
            for label in labels {
                let path = evaluate + "/" + label + "/reports/ood.json"
                guard let data = FileManager.default.contents(atPath: path) else { continue }
                guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                      let accuracy = json["id_accuracy"] as? Double, let averages = json["average_real"] as? [String: [String: Any]] else {
                    throw ConfigError.invalidValue(file: path, key: "average_real", expected: "an ood.json written by umtrain evaluate",
                                                   actual: "other JSON", hint: "re-run the evaluation.")
                }
                var byKind: [ScoreKind: OODMetrics] = [:]
                for (key, m) in averages {
                    guard let kind = ScoreKind(rawValue: key) else { continue }
                    func v(_ k: String) -> Double { m[k] as? Double ?? .nan }
                    byKind[kind] = OODMetrics(auroc: v("auroc"), auprIn: v("aupr_in"), auprOut: v("aupr_out"), fpr95: v("fpr95"),
                                              nID: Int64(m["n_id"] as? Int ?? 0), nOOD: Int64(m["n_ood"] as? Int ?? 0), fprMode: .strict)
                }
                models[label] = (accuracy, byKind)
            }
            scoreOrder = ScoreKind.allCases.filter { k in models.values.contains { $0.averages[k] != nil } }
        }
    }

    /// The metrics compared, with their direction.
    static let metrics: [(name: String, higherIsBetter: Bool, value: @Sendable (OODMetrics) -> Double)] = [
        ("AUROC", true, { $0.auroc }), ("AUPR-In", true, { $0.auprIn }), ("FPR95", false, { $0.fpr95 }),
    ]

    /// A paired difference in percentage points: "+1.23 [-0.40, 2.86], 2/3 improved" (and a
    /// trailing "*" when the interval excludes zero).
    static func cell(_ d: PairedDifference) -> String {
        func pp(_ x: Double) -> String { String(format: "%+.2f", 100 * x) }
        let interval = d.interval.map { " [\(pp($0.lower)), \(pp($0.upper))]" } ?? " (1 seed: no interval)"
        return pp(d.mean) + interval + ", \(d.improved)/\(d.seeds) better" + (d.significant ? " **significant**" : "")
    }

    /// The paired comparison as Markdown: for every score, each method against the baseline and
    /// (for UM and UMAP) against the CE control, over the runs that have both models.
    public static func markdown(runs: [Run], title: String) -> String {
        var s = "## \(title)\n\n"
        s += "Paired by seed over \(runs.count) run(s) (\(runs.map(\.name).joined(separator: ", "))): for each seed the method's "
            + "averaged metric minus the reference's on the same seed; mean difference in percentage points, a 95% Student-t "
            + "interval over seeds (df = seeds - 1), and how many seeds improved (higher AUROC/AUPR, lower FPR95). "
            + "**significant** only when the interval excludes zero; one seed gives no interval. Method in docs/metrics.md.\n\n"
        // best_val_epoch vs baseline is the paper's observation (an intermediate stage against the
        // final one); UM vs best_val_epoch asks whether UM beats stopping at that stage.
        let pairs: [(method: String, reference: String)] = [("um", "baseline"), ("umap", "baseline"), ("ce_finetune", "baseline"),
                                                             ("best_val_epoch", "baseline"), ("um", "ce_finetune"),
                                                             ("umap", "ce_finetune"), ("um", "best_val_epoch")]
        let kinds = runs.first?.scoreOrder ?? []
        s += "| score | method vs reference | seeds | ID acc | " + metrics.map(\.name).joined(separator: " | ") + " |\n"
        s += "|---|---|---|---|" + metrics.map { _ in "---|" }.joined() + "\n"
        for kind in kinds {
            for (method, reference) in pairs {
                let paired = runs.compactMap { run -> (m: (Double, OODMetrics), r: (Double, OODMetrics))? in
                    guard let m = run.models[method], let r = run.models[reference],
                          let mm = m.averages[kind], let rr = r.averages[kind] else { return nil }
                    return ((m.idAccuracy, mm), (r.idAccuracy, rr))
                }
                guard !paired.isEmpty else { continue }
                let accuracy = PairedDifference(method: paired.map(\.m.0), reference: paired.map(\.r.0), higherIsBetter: true)
                var row = "| \(kind) | \(method) vs \(reference) | \(paired.count) | \(String(format: "%+.2f", 100 * accuracy.mean)) |"
                for metric in metrics {
                    let d = PairedDifference(method: paired.map { metric.value($0.m.1) }, reference: paired.map { metric.value($0.r.1) },
                                             higherIsBetter: metric.higherIsBetter)
                    row += " \(cell(d)) |"
                }
                s += row + "\n"
            }
        }
        return s
    }
}
