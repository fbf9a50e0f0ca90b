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
                guard FileManager.default.fileExists(atPath: path) else { continue }
                let report = try OODReport.read(path)
                models[label] = (report.idAccuracy, report.averages)
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

    /// The comparisons made among `labels`: each fine-tuned model (UM, UMAP) against the
    /// baseline, against the CE control of its schedule and against best_val_epoch; each CE
    /// control and best_val_epoch against the baseline. best_val_epoch vs baseline is the paper's
    /// observation (an intermediate stage against the final one); UM vs best_val_epoch asks
    /// whether UM beats stopping at that stage. Without a sweep the order is the classic one.
    public static func pairs(labels: [String]) -> [(method: String, reference: String)] {
        let have = Set(labels)
        let classic: [(String, String)] = [("um", "baseline"), ("umap", "baseline"), ("ce_finetune", "baseline"),
                                           ("best_val_epoch", "baseline"), ("um", "ce_finetune"),
                                           ("umap", "ce_finetune"), ("um", "best_val_epoch")]
        var result = classic.filter { have.contains($0.0) && have.contains($0.1) }
        let cells = labels.filter { $0.contains("-") && SweepPlan.method(ofLabel: $0) != nil }.sorted()
        for l in cells where SweepPlan.method(ofLabel: l) == .ce && have.contains("baseline") { result.append((l, "baseline")) }
        for reference in ["baseline", "control", "best_val_epoch"] {
            for l in cells where SweepPlan.method(ofLabel: l) != .ce {
                let r = reference == "control" ? SweepPlan.controlLabel(of: l) ?? "" : reference
                if have.contains(r) { result.append((l, r)) }
            }
        }
        return result
    }

    /// The paired comparison as Markdown: for every score, each method against the baseline and
    /// (for UM and UMAP) against the CE control, over the runs that have both models.
    public static func markdown(runs: [Run], title: String) -> String {
        var s = "## \(title)\n\n"
        s += "Paired by seed over \(runs.count) run(s) (\(runs.map(\.name).joined(separator: ", "))): for each seed the method's "
            + "averaged metric minus the reference's on the same seed; mean difference in percentage points, a 95% Student-t "
            + "interval over seeds (df = seeds - 1), and how many seeds improved (higher AUROC/AUPR, lower FPR95). "
            + "**significant** only when the interval excludes zero; one seed gives no interval. Method in docs/metrics.md.\n\n"
        let pairs = Self.pairs(labels: Array(Set(runs.flatMap { $0.models.keys })))
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

extension Comparison {
    /// ID accuracy, AUROC and FPR95 of `label` against `reference` per seed, over the runs that
    /// have both with finite values (a NaN metric drops its seed, counted in `dropped`).
    static func pairedTriple(_ runs: [Run], _ label: String, _ reference: String, _ kind: ScoreKind)
        -> (acc: PairedDifference, auroc: PairedDifference, fpr: PairedDifference, dropped: Int)? {
        pairedTriple(runs.compactMap { run in
            guard let a = run.models[label], let b = run.models[reference], let am = a.averages[kind], let bm = b.averages[kind] else { return nil }
            return ((a.idAccuracy, am), (b.idAccuracy, bm))
        })
    }

    /// The same from (method, reference) pairs of (ID accuracy, averaged metrics), one per seed.
    static func pairedTriple(_ pairs: [(method: (Double, OODMetrics), reference: (Double, OODMetrics))])
        -> (acc: PairedDifference, auroc: PairedDifference, fpr: PairedDifference, dropped: Int)? {
        var m: [(Double, OODMetrics)] = [], r: [(Double, OODMetrics)] = []
        var dropped = 0
        for (a, b) in pairs {
            guard [a.0, b.0, a.1.auroc, b.1.auroc, a.1.fpr95, b.1.fpr95].allSatisfy(\.isFinite) else {
                dropped += 1
                continue
            }
            m.append(a)
            r.append(b)
        }
        guard !m.isEmpty else { return nil }
        return (PairedDifference(method: m.map(\.0), reference: r.map(\.0), higherIsBetter: true),
                PairedDifference(method: m.map(\.1.auroc), reference: r.map(\.1.auroc), higherIsBetter: true),
                PairedDifference(method: m.map(\.1.fpr95), reference: r.map(\.1.fpr95), higherIsBetter: false), dropped)
    }

    /// Sort key of a cell label: schedule, control first, method, then the xi target numerically
    /// (the estimate's recommendation first, then nats, then positions).
    static func cellOrder(_ label: String) -> (String, Int, String, Int, Double) {
        let parts = label.split(separator: "-", maxSplits: 2).map(String.init)
        let schedule = parts.count > 1 ? parts[1] : ""
        let method = parts[0]
        let tag = parts.count > 2 ? parts[2] : ""
        let kind = tag == "est" ? 0 : tag.hasPrefix("xi") ? 1 : tag.hasPrefix("p") ? 2 : 3
        let value = Double(tag.drop { !$0.isNumber && $0 != "." }) ?? 0
        return (schedule, method == "ce" ? 0 : 1, method, kind, value)
    }

    /// The regime map of a sweep over seeds: one row per UM/UMAP cell (schedule x xi target),
    /// per score in `kinds`: the paired change of AUROC and FPR95 against the baseline and
    /// against the CE control of the cell's schedule (mean [95% t-interval], seeds improved), the
    /// ID-accuracy change, and the mean resolved xi. CE controls get a row against the baseline.
    /// `xi` maps a cell label to its xi per seed (from validation.json), when known.
    public static func regimeMap(runs: [Run], kinds: [ScoreKind], xi: [String: [Double]] = [:]) -> String {
        let labels = Set(runs.flatMap { $0.models.keys })
        let cells = labels.filter { $0.contains("-") && SweepPlan.method(ofLabel: $0) != nil }.sorted { a, b in
            let x = cellOrder(a), y = cellOrder(b)
            if x.0 != y.0 { return x.0 < y.0 }
            if x.1 != y.1 { return x.1 < y.1 }
            if x.2 != y.2 { return x.2 < y.2 }
            if x.3 != y.3 { return x.3 < y.3 }
            if x.4 != y.4 { return x.4 < y.4 }
            return a < b
        }
        func pp(_ d: PairedDifference) -> String {
            func f(_ x: Double) -> String { String(format: "%+.2f", 100 * x) }
            let ci = d.interval.map { " [\(f($0.lower)), \(f($0.upper))]" } ?? ""
            return f(d.mean) + ci + " \(d.improved)/\(d.seeds)" + (d.significant ? " **" : "")
        }
        var s = ""
        for kind in kinds {
            s += "### \(kind)\n\n"
            s += "| cell | xi (nats, mean) | seeds | ID acc vs baseline | AUROC vs baseline | FPR95 vs baseline | AUROC vs CE control | FPR95 vs CE control |\n"
            s += "|---|---|---|---|---|---|---|---|\n"
            for label in cells {
                let control = SweepPlan.controlLabel(of: label)
                guard let base = pairedTriple(runs, label, "baseline", kind) else { continue }
                let ctl = control.flatMap { pairedTriple(runs, label, $0, kind) }
                let xs = xi[label] ?? []
                let xiText = xs.isEmpty ? "" : String(format: "%.4f", xs.reduce(0, +) / Double(xs.count))
                s += "| \(label) | \(xiText) | \(base.auroc.seeds) | \(String(format: "%+.2f", 100 * base.acc.mean)) | \(pp(base.auroc)) | "
                    + "\(pp(base.fpr)) | \(ctl.map { pp($0.auroc) } ?? "") | \(ctl.map { pp($0.fpr) } ?? "") |\n"
            }
            s += "\n"
        }
        return s
    }
}

extension Comparison {
    /// Each sweep cell's resolved xi (nats) per run, from `<run>/evaluate/<cell>/validation.json`.
    /// `labels` limits it to the models of the comparison (nil: every evaluated model).
    public static func xiByLabel(runRoots: [String], labels: Set<String>? = nil) -> [String: [Double]] {
        var out: [String: [Double]] = [:]
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        for root in runRoots {
            let dir = root + "/evaluate"
            for label in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where labels?.contains(label) ?? true {
                guard let data = FileManager.default.contents(atPath: dir + "/" + label + "/validation.json"),
                      let r = try? decoder.decode(ValidationRecord.self, from: data), let xi = r.xi else { continue }
                out[label, default: []].append(xi)
            }
        }
        return out
    }
}

extension Comparison {
    /// The opening of a seeds summary in plain words: first a verdict (which (method, score)
    /// pairs improved significantly, which got significantly worse, which did not change, and how
    /// many of its per-test 95% intervals would exclude zero by chance alone: one in 20), then
    /// for each fine-tuned model in `methods` (label -> its CE control's label) its accuracy change
    /// and, per score (the significantly improved scores first), the paired change of AUROC and
    /// FPR95 against the trained model (`baseline`) and against the CE control on the same
    /// schedule: mean in percentage points, the 95% t-interval over seeds, seeds better, and
    /// whether the interval excludes zero.
    public static func headline(runs: [Run], methods: [(label: String, control: String)], kinds: [ScoreKind]) -> String {
        func pp(_ d: PairedDifference) -> String {
            func f(_ x: Double) -> String { String(format: "%+.2f", 100 * x) }
            let ci = d.interval.map { " [\(f($0.lower)), \(f($0.upper))]" } ?? " (one seed: no interval)"
            return f(d.mean) + ci + ", \(d.improved)/\(d.seeds) seeds better" + (d.significant ? ", **significant**" : "")
        }
        var details = ""
        var improved: [String] = [], worse: [String] = [], none: [String] = []
        var testCount = 0, significantCount = 0  // paired tests with an interval (two or more seeds), and how many excluded zero
        for (label, control) in methods {
            guard runs.contains(where: { $0.models[label] != nil }) else { continue }
            let name = SweepPlan.method(ofLabel: label).map { $0 == .umap ? "UMAP" : "UM" } ?? label
            let cell = label.contains("-") ? " (`\(label)`)" : ""
            let missing = runs.filter { $0.models[label] == nil }.map(\.name)
            if let acc = pairedTriple(runs, label, "baseline", kinds.first ?? .energy)?.acc {
                details += "**\(name)\(cell)** changed ID accuracy by \(String(format: "%+.2f", 100 * acc.mean)) points against the trained model"
                details += missing.isEmpty ? ".\n\n" : " (it did not run in \(missing.joined(separator: ", ")): its flood level fell outside the "
                    + "training and held-out losses there, so these pairs cover only the other seeds).\n\n"
            }
            var lines: [(helped: Bool, text: String)] = []
            for kind in kinds {
                guard let base = pairedTriple(runs, label, "baseline", kind) else { continue }
                let ctl = pairedTriple(runs, label, control, kind)
                var line = "- \(kind): AUROC \(pp(base.auroc)) and FPR95 \(pp(base.fpr)) against the trained model"
                if let ctl { line += "; AUROC \(pp(ctl.auroc)) and FPR95 \(pp(ctl.fpr)) against the CE control" }
                let dropped = max(base.dropped, ctl?.dropped ?? 0)
                line += (dropped > 0 ? " (\(dropped) seed(s) with a non-finite metric left out)" : "") + ".\n"
                // (difference, whether higher is better, against what)
                let tests = [(base.auroc, true, "trained model"), (base.fpr, false, "trained model")]
                    + (ctl.map { [($0.auroc, true, "CE control"), ($0.fpr, false, "CE control")] } ?? [])
                testCount += tests.filter { $0.0.interval != nil }.count
                let better = tests.filter { $0.0.significant && ($0.0.mean > 0) == $0.1 }
                let poorer = tests.filter { $0.0.significant && ($0.0.mean > 0) != $0.1 }
                significantCount += better.count + poorer.count
                func words(_ list: [(PairedDifference, Bool, String)]) -> String {
                    list.map { "\($0.1 ? "AUROC" : "FPR95") against the \($0.2)" }.joined(separator: ", ")
                }
                if !better.isEmpty { improved.append("\(name) \(kind) (\(words(better)))") }
                if !poorer.isEmpty { worse.append("\(name) \(kind) (\(words(poorer)))") }
                if better.isEmpty && poorer.isEmpty { none.append("\(name) \(kind)") }
                lines.append((!better.isEmpty, line))
            }
            // The scores the method improves first.
            details += (lines.filter(\.helped) + lines.filter { !$0.helped }).map(\.text).joined() + "\n"
        }
        var s = "## In short\n\n"
        if !improved.isEmpty || !worse.isEmpty || !none.isEmpty {
            s += "**Significantly better** (the 95% interval over seeds excludes zero): " + (improved.isEmpty ? "none" : improved.joined(separator: "; ")) + ". "
            s += "**Significantly worse:** " + (worse.isEmpty ? "none" : worse.joined(separator: "; ")) + ". "
            s += "No significant change: " + (none.isEmpty ? "none" : none.joined(separator: ", ")) + ".\n\n"
            if testCount > 0 {
                // Multiplicity: each interval is a 95% interval on its own, not a family-wise one.
                s += "These are \(testCount) paired tests at the 95% level, each on its own: with no real effect anywhere about "
                    + String(format: "%.1f", Double(testCount) / 20) + " of them would come out significant by chance alone"
                    + " (here \(significantCount) did), so read an isolated significant change as a lead to check on more seeds, "
                    + "not as a finding.\n\n"
            }
        }
        s += "Paired by seed over \(runs.count) seed(s); changes in percentage points of the metric averaged over the real OOD sets, "
            + "[95% t-interval over seeds]; \"significant\" only when the interval excludes zero. Higher AUROC and lower FPR95 are "
            + "better. The CE control is plain cross-entropy fine-tuning on the identical schedule: the change against it is "
            + "what the method adds beyond fine-tuning itself.\n\n"
        return s + details
    }
}

extension Comparison {
    /// Which detector is best on which model: one table per metric (AUROC, FPR95), a row per
    /// score and a column per model (baseline, UM, UMAP, the CE control, best_val_epoch; sweep
    /// cells are left to the regime map), each cell the mean over seeds of the averaged metric
    /// with a 95% Student-t interval over seeds, the model's best in bold; then per model the
    /// best detector against the runner-up, paired by seed, and the best (model, detector) pair.
    public static func detectorTable(runs: [Run]) -> String {
        func pct(_ x: Double) -> String { x.isFinite ? String(format: "%.2f", 100 * x) : "n/a" }
        /// Mean and t-interval of the values themselves (a paired difference against 0).
        func summary(_ v: [Double]) -> PairedDifference? {
            let finite = v.filter(\.isFinite)
            return finite.isEmpty ? nil : PairedDifference(method: finite, reference: [Double](repeating: 0, count: finite.count), higherIsBetter: true)
        }
        let present = Set(runs.flatMap { $0.models.keys })
        let models = ["baseline", "um", "umap", "ce_finetune", "best_val_epoch"].filter(present.contains)
        let kinds = runs.first?.scoreOrder ?? []
        guard !models.isEmpty, !kinds.isEmpty else { return "" }
        var s = "Every detector on every model over \(runs.count) seed(s): the mean over seeds of the metric averaged over the real "
            + "OOD sets, in percent, with a 95% Student-t interval over seeds (df = seeds - 1); **bold** = the model's best. "
            + "The paired tables above say whether a model change helps a given detector.\n\n"
        var bestPair: (model: String, kind: ScoreKind, auroc: Double)?
        var ranking: [String: [(ScoreKind, Double)]] = [:]
        for (name, higher, value) in [("AUROC", true, { (m: OODMetrics) in m.auroc }), ("FPR95", false, { (m: OODMetrics) in m.fpr95 })] {
            s += "| \(name) | " + models.joined(separator: " | ") + " |\n|---|" + models.map { _ in "---|" }.joined() + "\n"
            var means: [String: [ScoreKind: Double]] = [:]
            var cells: [ScoreKind: [String: String]] = [:]
            for model in models {
                for kind in kinds {
                    guard let d = summary(runs.compactMap { $0.models[model]?.averages[kind] }.map(value)) else { continue }
                    means[model, default: [:]][kind] = d.mean
                    cells[kind, default: [:]][model] = pct(d.mean) + (d.interval.map { " [\(pct($0.lower)), \(pct($0.upper))]" } ?? "")
                }
            }
            var best: [String: ScoreKind] = [:]
            for model in models {
                let ranked = (means[model] ?? [:]).sorted { higher ? $0.value > $1.value : $0.value < $1.value }
                if let top = ranked.first { best[model] = top.key }
                if name == "AUROC" {
                    ranking[model] = ranked.map { ($0.key, $0.value) }
                    if let top = ranked.first, bestPair == nil || top.value > bestPair!.auroc { bestPair = (model, top.key, top.value) }
                }
            }
            for kind in kinds {
                s += "| \(kind.rawValue) | " + models.map { m in
                    let c = cells[kind]?[m] ?? "n/a"
                    return best[m] == kind ? "**\(c)**" : c
                }.joined(separator: " | ") + " |\n"
            }
            s += "\n"
        }
        s += "Best detector against the runner-up (AUROC, paired by seed):\n\n"
        for model in models {
            guard let r = ranking[model], r.count >= 2 else { continue }
            let pairs = runs.compactMap { run -> (Double, Double)? in
                guard let a = run.models[model]?.averages[r[0].0]?.auroc, let b = run.models[model]?.averages[r[1].0]?.auroc else { return nil }
                return (a, b)
            }
            guard !pairs.isEmpty else { continue }
            s += "- \(model): \(r[0].0.rawValue) - \(r[1].0.rawValue) " + cell(PairedDifference(method: pairs.map(\.0), reference: pairs.map(\.1), higherIsBetter: true)) + "\n"
        }
        if let bestPair {
            s += "\nBest (model, detector) pair by mean AUROC: **\(bestPair.model) + \(bestPair.kind.rawValue)** (\(pct(bestPair.auroc))).\n"
        }
        return s
    }
}
